# The churn platform's image: one image for every role, chosen by the command (see
# docker-compose.yml and deploy/k8s/, which use the README's commands):
#   web        gunicorn churn_platform.wsgi:application -c gunicorn.conf.py
#   migrations python manage.py migrate --no-input
#   worker     celery -A churn_platform worker -l INFO -Q interactive,batch,training,ingestion
#   beat       celery -A churn_platform beat -l INFO
#   backup     python manage.py backup --output /backups
#
# BASE_IMAGE is any Debian bookworm image with python3.11 and its venv module: the official
# Python image by default, or the registry-free base `deploy/docker/base-image.sh` makes from
# Debian's packages (what `make image-smoke` builds on). Both stages use the same base, so the
# virtualenv's interpreter links stay valid.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- source: the build context without the build-time pip settings ---------------------------
FROM ${BASE_IMAGE} AS source
COPY . /src
# .pip-build/ carries the build machine's pip settings (index, certificate bundle) into the
# builder stage only; it never reaches the runtime image.
RUN rm -rf /src/.pip-build

# --- build: install the pinned requirements into a virtualenv -------------------------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The wildcard lets the build go on when there is no .pip-build/ (a plain `docker build`).
COPY requirements.txt .pip-build* /tmp/build/
# Every requirement ships a manylinux wheel (psycopg2-binary, numpy, pandas, scikit-learn), so
# the build needs no compiler and the runtime stage no build tools.
RUN if [ -f /tmp/build/pip.conf ]; then export PIP_CONFIG_FILE=/tmp/build/pip.conf; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r /tmp/build/requirements.txt \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /tmp/build

# --- runtime: the virtualenv and the code, run as an unprivileged user -----------------------
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_ENV=production \
    LOG_FORMAT=json \
    CHURN_VAR_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    GUNICORN_BIND=0.0.0.0:8000
# pg_dump and pg_restore for `manage.py backup` and `restore` (the debootstrap base has them).
RUN command -v pg_dump >/dev/null \
 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-client \
     && rm -rf /var/lib/apt/lists/*)
RUN groupadd --system --gid 10001 churn \
 && useradd --system --uid 10001 --gid churn --home-dir /app --shell /usr/sbin/nologin churn \
 && mkdir -p /data /tmp/prometheus \
 && chown churn:churn /data /tmp/prometheus
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=source /src /app
# Static files are collected into the image; a throwaway key satisfies the production checks
# for this one command and is not kept in any layer's environment.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    DJANGO_ALLOWED_HOSTS=localhost \
    PROMETHEUS_MULTIPROC_DIR= \
    CHURN_VAR_DIR=/tmp/collectstatic \
    python manage.py collectstatic --no-input -v0 \
 && rm -rf /tmp/collectstatic
USER churn:churn
EXPOSE 8000 9808
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["gunicorn", "churn_platform.wsgi:application", "-c", "gunicorn.conf.py"]
