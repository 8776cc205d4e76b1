"""Settings for the churn platform.

Over 500 lines on purpose: Django reads one settings module; it is grouped by section, each setting
with the environment variable that sets it.

Every value comes from the environment (django-environ) with a working embedded default, so
that `make run` needs nothing but Python: SQLite, eager Celery and the local-memory cache.
Setting DATABASE_URL and REDIS_URL switches to PostgreSQL, Redis and real Celery workers.
DJANGO_ENV=production turns on the secure settings and refuses to start without real secrets.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from babel import Locale, UnknownLocaleError
from babel.numbers import is_currency
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

# --- ENVIRONMENT ----------------------------------------------------------------------------

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, production or test; got {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

VAR_DIR = Path(env.str("CHURN_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite, uploads and model artifacts of a fresh checkout


def _checkout_secret_key(path: Path) -> str:
    """Development and tests: a random key made once per checkout, kept in var/ (gitignored).

    A key written in the source would let anyone who read it forge sessions and JWTs of every
    development instance. Created exclusively, so processes starting together share one key.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        key = secrets.token_urlsafe(64)
        out.write(key + "\n")
    return key


# Production refuses to start without a real key (below); elsewhere an unset key is made per checkout.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (
    "" if PRODUCTION else _checkout_secret_key(VAR_DIR / "development-secret-key")
)
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION and DJANGO_ENV != "test")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])

if PRODUCTION:
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a random value of 50+ characters in production")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list the served host names in production")
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production")

# --- APPLICATIONS ---------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",
    "corsheaders",
    "django_prometheus",
    "rest_framework",
    "django_filters",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "accounts",
    "customers",
    "modelregistry",
    "predictions",
    "campaigns",
    # The wiring: management commands that drive several apps (bootstrap_demo), the beat schedules.
    "churn_platform",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "churn_platform.middleware.RequestIdMiddleware",
    # Before any work: a request that waited too long in the queue is answered 503 at once.
    "churn_platform.middleware.LoadSheddingMiddleware",
    "churn_platform.middleware.ApiNoStoreMiddleware",
    "churn_platform.observability.ApiMetricsMiddleware",
    "churn_platform.observability.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "churn_platform.middleware.ApiErrorMiddleware",
    "churn_platform.middleware.OutageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes asks: turns a lock-out found during authentication into its 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "churn_platform.urls"
WSGI_APPLICATION = "churn_platform.wsgi.application"
ASGI_APPLICATION = "churn_platform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- DATABASE -------------------------------------------------------------------------------

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'churn.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3))
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dev server read while an eager task writes; the timeout rides out short locks.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
# django-prometheus's wrappers of the same engines count queries, errors and their durations.
if DATABASES["default"]["ENGINE"] in {f"django.db.backends.{e}" for e in ("postgresql", "sqlite3", "mysql")}:
    DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace("django.db.", "django_prometheus.db.")
# --- OUTAGES: DATABASE TIMEOUTS ---------------------------------------------------------------
# The request path (CHURN_PROCESS_ROLE=web, set by gunicorn.conf.py) gets statement and lock
# timeouts, so a stuck query or a held lock costs a request at most that long (then a 503).
# Every other process (Celery workers running batch jobs and ingestion, migrate, management
# commands) uses the DATABASE_WORKER_* values, off by default: long statements are their job.
# TCP keepalives on both ends let PostgreSQL drop a lost client's session (and its locks) within
# about a minute, and let a client notice a lost server.
CHURN_PROCESS_ROLE = env.str("CHURN_PROCESS_ROLE", default="")
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=20.0)
DATABASE_LOCK_TIMEOUT = env.float("DATABASE_LOCK_TIMEOUT", default=5.0)
DATABASE_WORKER_STATEMENT_TIMEOUT = env.float("DATABASE_WORKER_STATEMENT_TIMEOUT", default=0.0)
DATABASE_WORKER_LOCK_TIMEOUT = env.float("DATABASE_WORKER_LOCK_TIMEOUT", default=0.0)


def postgres_session_options(*, web: bool) -> str:
    """libpq ``options``: per-session settings PostgreSQL applies to every connection."""
    statement = DATABASE_STATEMENT_TIMEOUT if web else DATABASE_WORKER_STATEMENT_TIMEOUT
    lock = DATABASE_LOCK_TIMEOUT if web else DATABASE_WORKER_LOCK_TIMEOUT
    return " ".join((
        f"-c statement_timeout={round(statement * 1000)}",
        f"-c lock_timeout={round(lock * 1000)}",
        "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
    ))


for _db in DATABASES.values():
    if _db["ENGINE"].endswith("postgresql"):
        _db.setdefault("OPTIONS", {})
        _db["OPTIONS"].setdefault("options", postgres_session_options(web=CHURN_PROCESS_ROLE == "web"))
        _db["OPTIONS"].setdefault("keepalives", 1)
        _db["OPTIONS"].setdefault("keepalives_idle", 30)
        _db["OPTIONS"].setdefault("keepalives_interval", 10)
        _db["OPTIONS"].setdefault("keepalives_count", 3)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Prediction rows commit without waiting for the WAL flush (see churn_infra.db.relaxed_commit).
DATABASE_RELAXED_COMMIT = env.bool("DATABASE_RELAXED_COMMIT", default=True)

# --- CACHE AND CELERY -----------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "churn_infra.cache_backends.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="churn"),
            # A frozen Redis costs a request at most one timeout: the breaker then refuses at once.
            "OPTIONS": {
                "socket_connect_timeout": env.float("CACHE_CONNECT_TIMEOUT", default=1.0),
                "socket_timeout": env.float("CACHE_SOCKET_TIMEOUT", default=1.0),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "churn_infra.cache_backends.LocMemCache", "LOCATION": "churn"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
# With no broker configured, tasks run in-process so the platform works with nothing installed.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pool processes per worker; unset, Celery starts one per core of the machine, which in a
# container is the node's core count, not the pod's CPU limit.
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=None)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=3300)
CELERY_RESULT_EXPIRES = timedelta(days=1)
# Longer than the longest task, or Redis hands a still-running task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
CELERY_TASK_DEFAULT_QUEUE = "interactive"
CELERY_TASK_ROUTES = {
    "predictions.tasks.*": {"queue": "batch"},
    "modelregistry.tasks.*": {"queue": "training"},
    "customers.tasks.*": {"queue": "ingestion"},
    "campaigns.tasks.*": {"queue": "interactive"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- OUTAGES: CACHE, BROKER, PROBES AND LOAD SHEDDING ----------------------------------------
# After a failed Redis call, this process skips Redis for this many seconds (circuit breaker):
# keys are verified from PostgreSQL and rate limits let requests through, logged and counted.
CACHE_RETRY_SECONDS = env.float("CACHE_RETRY_SECONDS", default=5.0)
# Publishing a task to a frozen broker fails within seconds instead of hanging the request.
BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_SOCKET_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS.update(
    socket_timeout=BROKER_SOCKET_TIMEOUT, socket_connect_timeout=BROKER_SOCKET_TIMEOUT
)
CELERY_REDIS_SOCKET_TIMEOUT = BROKER_SOCKET_TIMEOUT
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = BROKER_SOCKET_TIMEOUT
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# /readyz answers within this many seconds whatever hangs (below the 5 s probe timeout).
READYZ_TIMEOUT_SECONDS = env.float("READYZ_TIMEOUT_SECONDS", default=1.5)
# A request that waited longer than this in the queue (ingress X-Request-Start, or the time its
# bytes sat in the socket buffer) is answered 503 without being worked on; 0 turns shedding off.
REQUEST_QUEUE_TIMEOUT_SECONDS = env.float("REQUEST_QUEUE_TIMEOUT_SECONDS", default=5.0)

# --- BATCH SCORING AND RETRAINING -----------------------------------------------------------

# Customers per chunk task. 25,000 keeps a worker process at ~250 MB peak (measured) and a chunk near
# one second, so a killed worker loses little and progress moves smoothly.
BATCH_CHUNK_SIZE = env.int("BATCH_CHUNK_SIZE", default=25_000)
BATCH_JOB_MAX_IDS = env.int("BATCH_JOB_MAX_IDS", default=100_000)
BATCH_JOB_MAX_UPLOAD_BYTES = env.int("BATCH_JOB_MAX_UPLOAD_BYTES", default=512 * 1024 * 1024)
BATCH_JOB_OUTPUT_FILE = env.bool("BATCH_JOB_OUTPUT_FILE", default=True)
BATCH_CHUNK_SOFT_TIME_LIMIT = env.int("BATCH_CHUNK_SOFT_TIME_LIMIT", default=300)
BATCH_CHUNK_TIME_LIMIT = env.int("BATCH_CHUNK_TIME_LIMIT", default=360)
# A chunk running this long without holding its lock, or pending this long with an empty batch
# queue, lost its message (a worker killed before Redis' visibility timeout ran out): re-sent.
# A chunk being scored holds its row lock for the whole work, and PostgreSQL releases it the
# moment the worker's connection drops, so 60 s is far from any live chunk.
BATCH_CHUNK_STALE_SECONDS = env.int("BATCH_CHUNK_STALE_SECONDS", default=60)
# Schedules, as five-field cron lines in UTC ("off" disables one); `manage.py setup_schedules`
# (also run by migrate) writes them to django-celery-beat.
BATCH_SCORING_CRON = env.str("BATCH_SCORING_CRON", default="0 2 * * *")
BATCH_WATCHDOG_CRON = env.str("BATCH_WATCHDOG_CRON", default="* * * * *")
INGESTION_WATCHDOG_CRON = env.str("INGESTION_WATCHDOG_CRON", default="* * * * *")
# Without beat, each worker sends both watchdogs itself this often (and once at start); 0: off.
WORKER_WATCHDOG_SECONDS = env.int("WORKER_WATCHDOG_SECONDS", default=60)
RETRAIN_CRON = env.str("RETRAIN_CRON", default="0 3 1 * *")
RETRAIN_EVALUATION_CRON = env.str("RETRAIN_EVALUATION_CRON", default="30 */6 * * *")
# Campaigns: close the ended ones after the date turns, refresh the dashboard charts as often as
# it promises (campaigns.selectors.POPULATION_FRESH_SECONDS), the digests before a working day.
CAMPAIGN_CLOSE_CRON = env.str("CAMPAIGN_CLOSE_CRON", default="15 0 * * *")
POPULATION_STATS_CRON = env.str("POPULATION_STATS_CRON", default="*/5 * * * *")
DIGEST_CRON = env.str("DIGEST_CRON", default="30 6 * * *")
# Retraining triggers: PSI of recent inputs per feature, live accuracy, mean confidence.
RETRAIN_ACCURACY_THRESHOLD = env.float("RETRAIN_ACCURACY_THRESHOLD", default=0.80)
RETRAIN_CONFIDENCE_THRESHOLD = env.float("RETRAIN_CONFIDENCE_THRESHOLD", default=0.70)
RETRAIN_WINDOW_DAYS = env.int("RETRAIN_WINDOW_DAYS", default=30)
RETRAIN_MIN_SAMPLES = env.int("RETRAIN_MIN_SAMPLES", default=200)
RETRAIN_DRIFT_SAMPLE_SIZE = env.int("RETRAIN_DRIFT_SAMPLE_SIZE", default=50_000)
RETRAIN_COOLDOWN_HOURS = env.int("RETRAIN_COOLDOWN_HOURS", default=24)
# "never": a retrained model stays a testing version; "if_better": it is promoted when its
# held-out ROC AUC beats the active model's on the same split by the margin.
RETRAIN_PROMOTION_POLICY = env.str("RETRAIN_PROMOTION_POLICY", default="never")
if RETRAIN_PROMOTION_POLICY not in {"never", "if_better"}:
    raise ImproperlyConfigured(f"RETRAIN_PROMOTION_POLICY must be never or if_better; got {RETRAIN_PROMOTION_POLICY!r}")
RETRAIN_PROMOTION_MARGIN = env.float("RETRAIN_PROMOTION_MARGIN", default=0.005)
RETRAIN_ALGORITHM = env.str("RETRAIN_ALGORITHM", default="auto")
RETRAIN_SOFT_TIME_LIMIT = env.int("RETRAIN_SOFT_TIME_LIMIT", default=3000)
RETRAIN_TIME_LIMIT = env.int("RETRAIN_TIME_LIMIT", default=3300)
# Redis hands an unacknowledged task to another worker after this many seconds; it must exceed
# the longest task. Lower it only where tasks are short (the worker tests use a few seconds).
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = env.int(
    "CELERY_VISIBILITY_TIMEOUT", default=CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
)

# --- MODEL GOVERNANCE (issue 12: gate, live performance, A/B statistics, shadow, drift) -------
# Promotion gate (modelregistry.gate): candidate and active model scored on the same rows (the
# candidate's held-out rows plus recent outcomes); refused when the candidate is significantly
# worse (DeLong paired test, one-sided p below the alpha) or its ROC AUC is below the floor.
MODEL_GATE_ALPHA = env.float("MODEL_GATE_ALPHA", default=0.05)
MODEL_GATE_MIN_ROC_AUC = env.float("MODEL_GATE_MIN_ROC_AUC", default=0.70)
MODEL_GATE_MAX_OUTCOME_ROWS = env.int("MODEL_GATE_MAX_OUTCOME_ROWS", default=100_000)
# Live performance: each outcome is joined to the latest prediction made before it, at most
# this many days before; figures are refreshed this many seconds after outcomes arrive.
LIVE_PERFORMANCE_HORIZON_DAYS = env.int("LIVE_PERFORMANCE_HORIZON_DAYS", default=90)
LIVE_PERFORMANCE_DEBOUNCE_SECONDS = env.int("LIVE_PERFORMANCE_DEBOUNCE_SECONDS", default=20)
LIVE_PERFORMANCE_CRON = env.str("LIVE_PERFORMANCE_CRON", default="*/15 * * * *")
# A/B statistics: the ROC AUC difference the test should be able to detect (needed_n), and the
# significance level at which stop-with-promote refuses a worse challenger.
AB_TEST_DETECTABLE_DIFFERENCE = env.float("AB_TEST_DETECTABLE_DIFFERENCE", default=0.02)
AB_TEST_ALPHA = env.float("AB_TEST_ALPHA", default=0.05)
AB_TEST_POWER = env.float("AB_TEST_POWER", default=0.8)
# Drift: per-field thresholds from the PSI of resamples of the reference at the batch's size;
# the family-wise false-alarm rate is split over the fields (Bonferroni).
DRIFT_FALSE_ALARM_RATE = env.float("DRIFT_FALSE_ALARM_RATE", default=0.01)
DRIFT_NULL_RESAMPLES = env.int("DRIFT_NULL_RESAMPLES", default=5000)
# Shadow scoring: rows buffered per process before one write.
SHADOW_WRITE_BATCH = env.int("SHADOW_WRITE_BATCH", default=200)
SHADOW_MAX_BUFFER_SECONDS = env.float("SHADOW_MAX_BUFFER_SECONDS", default=2.0)

# --- AUTHENTICATION AND API -----------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
# One sign-in lock-out policy for /admin/login/, /accounts/login/ and POST /api/v1/auth/token/
# (django-axes; accounts.login_policy): LOGIN_MAX_FAILURES failed sign-ins for one account from
# one address, or from one address for any accounts, lock that out for LOGIN_LOCKOUT_MINUTES;
# each attempt while locked out starts the wait again. Answered 429 with Retry-After, audited.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=10)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
AUTHENTICATION_BACKENDS = [
    "accounts.login_policy.LoginPolicyBackend",  # django-axes' check, skipped only without a request
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = "accounts.login_policy.failure_limit"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.login_policy.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.login_policy.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Failed API-key authentications per address and minute before the address is answered 429
# (with Retry-After) until the minute is over; counted in the shared cache.
API_KEY_MAX_FAILURES_PER_MINUTE = env.int("API_KEY_MAX_FAILURES_PER_MINUTE", default=30)
LOGIN_REDIRECT_URL = "/staff/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- CLIENT ADDRESSES, LOGIN ABUSE AND HARDENING (issue 11) --------------------------------

# Reverse proxies in front of the app that append to X-Forwarded-For (the Kubernetes ingress
# controller is 1). The client address for lock-outs, rate limits, key and metrics allowlists is
# the TRUSTED_PROXY_COUNT-th entry from the right; 0 ignores the header. Never set it higher than
# the proxies really there, or clients choose their own address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.CallerRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["churn_infra.json_api.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["churn_infra.json_api.OrjsonParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "churn_infra.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "churn_infra.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# Requests per minute when the department sets none. Counted in the shared cache, per key/user.
API_KEY_RATE_LIMIT_PER_MINUTE = env.int("API_KEY_RATE_LIMIT_PER_MINUTE", default=60_000)
USER_RATE_LIMIT_PER_MINUTE = env.int("USER_RATE_LIMIT_PER_MINUTE", default=6_000)
ANON_RATE_LIMIT_PER_MINUTE = env.int("ANON_RATE_LIMIT_PER_MINUTE", default=120)
# Seconds a verified API key is remembered in the shared cache; revocation clears it at once.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=300)

SPECTACULAR_SETTINGS = {
    "TITLE": "Churn platform API",
    "DESCRIPTION": (
        "Customer churn scoring, ingestion, model registry and retention campaigns.\n\n"
        "**Warning: \"Try it out\" sends real requests.** With a real API key they create, change and delete "
        "real customers, predictions, jobs and campaigns in this installation; use a test department's key, "
        "or `POST predictions/?store=false` for what-if scoring.\n\n"
        "Errors are JSON `{\"detail\", \"code\", \"request_id\"}` (plus `errors` per field for 400); an "
        "unavailable dependency is a 503 `service_unavailable` with Retry-After, a rate limit a 429 with Retry-After."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets served from the app itself, so /api/docs/ works without a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation's error answers (400/401/403/404/429/503, 411/413 for uploads), in one shape.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "churn_platform.openapi.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "InternetAddonEnum": ["Yes", "No", "No internet service"],
        "PhoneLinesEnum": ["Yes", "No", "No phone service"],
        # Several serializers expose these choice sets; one name each keeps the schema free of collisions.
        "ModelStatusEnum": "modelregistry.models.ModelStatus",
        "FollowUpStatusEnum": "campaigns.models.FollowUpStatus",
        "TargetOutcomeEnum": "campaigns.models.TargetOutcome",
        "RiskLevelEnum": "predictions.models.RiskLevel",
        # Retraining records (issue 12): runs and trigger evaluations share kinds, statuses, decisions.
        "RetrainingTriggerEnum": "modelregistry.models.TriggerKind",
        "TriggerDecisionEnum": "modelregistry.models.TriggerDecision",
        "RetrainingStatusEnum": "modelregistry.models.RetrainingStatus",
        "RetrainingDecisionEnum": "modelregistry.models.RetrainingDecision",
    },
}

# The bulk endpoint takes 10,000 records (about 6 MB of JSON); anything above this is a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=16 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2_000
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
BULK_MAX_RECORDS = 10_000
BATCH_PREDICTION_MAX_RECORDS = 1_000

# --- INGESTION ------------------------------------------------------------------------------

# Largest file POST /api/v1/ingestions/ accepts (bytes); uploads stream to a temporary file.
INGESTION_MAX_UPLOAD_BYTES = env.int("INGESTION_MAX_UPLOAD_BYTES", default=1024**3)
# Rows validated and written per transaction. A 40,000-row Telco chunk takes about 10 MB parsed,
# 7 MB validated and 7 MB as a COPY buffer; with two writers four chunks are in memory at once,
# and a 1,000,000-row file peaks at about 360 MB in a worker that starts at 200 MB (50,000-row
# chunks: up to 395 MB; 100,000: 430 MB).
INGESTION_CHUNK_ROWS = env.int("INGESTION_CHUNK_ROWS", default=40_000)
# Read and validate the next chunk while the database writes earlier ones, on this many writer
# threads (each its own connection; PostgreSQL works in its own processes meanwhile).
INGESTION_PIPELINE_THREADS = env.bool("INGESTION_PIPELINE_THREADS", default=True)
INGESTION_WRITERS = env.int("INGESTION_WRITERS", default=2)
# A running run whose worker has not reported for this long is taken over by the next attempt.
INGESTION_STALE_SECONDS = env.int("INGESTION_STALE_SECONDS", default=60)
# A running run's worker writes its heartbeat this often, whatever a chunk takes.
INGESTION_HEARTBEAT_SECONDS = env.int("INGESTION_HEARTBEAT_SECONDS", default=15)
# Largest HTTP source page (bytes).
INGESTION_HTTP_MAX_PAGE_BYTES = env.int("INGESTION_HTTP_MAX_PAGE_BYTES", default=64 * 1024**2)
# Fernet keys (comma-separated; the first encrypts, all decrypt, so keys can be rotated) for data
# source passwords. Unset outside production, a key is derived from DJANGO_SECRET_KEY.
DATA_SOURCE_ENCRYPTION_KEYS = env.list("DATA_SOURCE_ENCRYPTION_KEY", default=[])

# --- EGRESS AND QUOTAS (data sources, quarantine, batch jobs) ------------------------------

# Data sources may reach only public addresses; these CIDRs, addresses or host names are allowed
# too (comma-separated), e.g. "10.20.0.0/16,crm-replica.internal".
DATA_SOURCE_ALLOWED_NETWORKS = env.list("DATA_SOURCE_ALLOWED_NETWORKS", default=[])
# Rejected rows kept in full per ingestion run; those beyond are counted, not stored.
INGESTION_QUARANTINE_MAX_ROWS = env.int("INGESTION_QUARANTINE_MAX_ROWS", default=10_000)
# A run whose first chunk (of at least INGESTION_FAIL_FAST_MIN_ROWS rows) is rejected in more than
# this share stops there: the file or the mapping is wrong, and the rest would only fill quarantine.
INGESTION_FAIL_FAST_REJECTED_SHARE = env.float("INGESTION_FAIL_FAST_REJECTED_SHARE", default=0.5)
INGESTION_FAIL_FAST_MIN_ROWS = env.int("INGESTION_FAIL_FAST_MIN_ROWS", default=100)
# Batch prediction jobs per department: queued or running at once, and created per hour (0: no limit).
BATCH_JOBS_MAX_ACTIVE_PER_DEPARTMENT = env.int("BATCH_JOBS_MAX_ACTIVE_PER_DEPARTMENT", default=2)
BATCH_JOBS_MAX_PER_HOUR_PER_DEPARTMENT = env.int("BATCH_JOBS_MAX_PER_HOUR_PER_DEPARTMENT", default=20)

# --- CORS AND SECURITY ----------------------------------------------------------------------

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy of the staff pages, the admin and the sign-in pages (django-csp): scripts,
# styles, images and fonts from this site only, no inline code, no framing, forms post here only.
# The htmx staff pages and the admin work under it (tests/campaigns/test_browser.py checks Chromium
# reports no violation). /api/ answers JSON (and Swagger UI, which needs its inline script) and is
# left out. CSP_REPORT_URI, when set, receives violation reports.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
if env.str("CSP_REPORT_URI", default=""):
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["report-uri"] = [env.str("CSP_REPORT_URI")]

if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Health probes and Prometheus scrape over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- CAMPAIGNS ------------------------------------------------------------------------------------

# The save rate (share of would-be churners a contact keeps) a campaign's projection assumes until it
# has measured its own uplift, when the operator set no prior for it. 0.10 is a cautious figure: the
# bundled hand-computed campaign measured 0.20.
CAMPAIGN_SAVE_RATE_PRIOR = env.float("CAMPAIGN_SAVE_RATE_PRIOR", default=0.10)

# --- E-MAIL (the staff's daily digest) --------------------------------------------------------------

# EMAIL_URL (django-environ: smtp+tls://user:pass@host:587) in production; the console backend prints
# the mail elsewhere, so `make run` shows a digest without a mail server.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="churn-platform@localhost")
# The address staff open the pages at, for the links in e-mails.
STAFF_BASE_URL = env.str("STAFF_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- INTERNATIONALISATION AND STATIC FILES --------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Money on the staff pages and in exports: an ISO 4217 code, formatted for CURRENCY_LOCALE by Babel
# (symbol, separators and decimals as that locale writes them).
CURRENCY = env.str("CURRENCY", default="USD").upper()
CURRENCY_LOCALE = env.str("CURRENCY_LOCALE", default="en_US")
if not is_currency(CURRENCY):
    raise ImproperlyConfigured(f"CURRENCY must be an ISO 4217 code such as USD or EUR; got {CURRENCY!r}")
try:
    Locale.parse(CURRENCY_LOCALE)
except (ValueError, UnknownLocaleError) as exc:
    raise ImproperlyConfigured(
        f"CURRENCY_LOCALE must be a locale such as en_US or de_DE; got {CURRENCY_LOCALE!r}"
    ) from exc

STATIC_URL = "/static/"
# collectstatic fills STATIC_ROOT for production; elsewhere WhiteNoise serves from the finders.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))) if PRODUCTION else None
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    # Model artifacts; point at S3/GCS storage by configuration without code changes.
    "models": {
        "BACKEND": env.str("MODEL_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
        "OPTIONS": {"location": str(VAR_DIR / "models")}
        if env.str("MODEL_STORAGE_BACKEND", default="").endswith("FileSystemStorage") or not env.str(
            "MODEL_STORAGE_BACKEND", default=""
        )
        else {},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}

# --- LOGGING --------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "churn_infra.logging.RequestIdFilter"}},
    # Both formatters remove API keys, tokens, passwords and configured secrets from every line.
    "formatters": {
        "json": {
            "()": "churn_infra.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {
            "()": "churn_infra.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own default handlers would print these records a second time, unformatted.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "py.warnings": {"handlers": [], "propagate": True},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- OBSERVABILITY --------------------------------------------------------------------------

# When set, /metrics (web and worker) answers only scrapes that send "Authorization: Bearer <token>".
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Networks /metrics (web and worker) is served to, by the client address rule (TRUSTED_PROXY_COUNT).
# The default is loopback and the private ranges a cluster's or compose network's Prometheus uses.
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not an address or network") from _exc
# prometheus_client fails at the first metric when its multiprocess directory is missing (a fresh
# emptyDir mount, a one-off management command); settings load before any metric is created.
if env.str("PROMETHEUS_MULTIPROC_DIR", default=""):
    Path(env.str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)

# --- DEPLOYMENT: BACKUPS, READ REPLICA, RETENTION, OBJECT STORAGE (issue 16) ----------------

# Optional streaming replica for read-only work (churn_infra.replica): staff pages, lists,
# reports, exports and the live-performance computation read there; writes, transactions and
# any read after a write in the same request stay on the primary.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASES["default"]["CONN_MAX_AGE"])
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"]["ENGINE"] = DATABASES["default"]["ENGINE"]
    DATABASES["replica"].setdefault("OPTIONS", {}).update(DATABASES["default"].get("OPTIONS", {}))
    # Tests see one database through both aliases unless a test builds a real replica itself.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["churn_infra.replica.PrimaryReplicaRouter"]
DATABASE_REPLICA_PATHS = env.list(
    "DATABASE_REPLICA_PATHS",
    # Pages and reports read by people, not API calls a client makes right after its own write
    # (a GET of what a POST just created could miss it on a lagging replica).
    default=["/staff/", "/api/v1/campaigns/", "/api/v1/models/"],
)
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"),
                  "churn_infra.replica.ReplicaReadsMiddleware")

# Retention, enforced by beat (churn_platform.schedules): rows older than this many days are
# deleted; 0 keeps them forever. Predictions feed live accuracy and drift over RETRAIN_WINDOW_DAYS,
# so keep them longer than that window.
PREDICTION_RETENTION_DAYS = env.int("PREDICTION_RETENTION_DAYS", default=730)
QUARANTINE_RETENTION_DAYS = env.int("QUARANTINE_RETENTION_DAYS", default=90)
PREDICTION_RETENTION_CRON = env.str("PREDICTION_RETENTION_CRON", default="15 4 * * *")
QUARANTINE_RETENTION_CRON = env.str("QUARANTINE_RETENTION_CRON", default="45 4 * * *")
# PostgreSQL keeps predictions in monthly partitions (predictions.partitions): beat creates this
# month's and the next PREDICTION_PARTITIONS_AHEAD months' ahead of their first row, so rows never
# wait in the upper catch-all partition; daily, so a missed run or a lock timeout is made up the next day.
PREDICTION_PARTITIONS_AHEAD = env.int("PREDICTION_PARTITIONS_AHEAD", default=3)
PREDICTION_PARTITIONS_CRON = env.str("PREDICTION_PARTITIONS_CRON", default="5 3 * * *")
if PREDICTION_PARTITIONS_AHEAD < 1:
    raise ImproperlyConfigured("PREDICTION_PARTITIONS_AHEAD must be at least 1: next month needs its partition.")

# Model artifacts in S3-compatible object storage (django-storages + boto3). Credentials come
# from boto3's usual sources: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a pod identity, a profile.
MODEL_STORAGE_S3_BUCKET = env.str("MODEL_STORAGE_S3_BUCKET", default="")
if MODEL_STORAGE_S3_BUCKET:
    STORAGES["models"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MODEL_STORAGE_S3_BUCKET,
            "location": env.str("MODEL_STORAGE_S3_PREFIX", default="models"),
            "endpoint_url": env.str("MODEL_STORAGE_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("MODEL_STORAGE_S3_REGION", default="") or None,
            "addressing_style": env.str("MODEL_STORAGE_S3_ADDRESSING_STYLE", default="") or None,
            # A version's artifact is written once under its unique label; never overwrite one.
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": False,
        },
    }
