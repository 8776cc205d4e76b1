# syntax=docker/dockerfile:1
# The churn platform's image: one image for every role, chosen by the command (see
# docker-compose.yml and deploy/k8s/, which use the README's commands):
#   web        gunicorn churn_platform.wsgi:application -c gunicorn.conf.py
#   migrations python manage.py migrate --no-input
#   worker     celery -A churn_platform worker -l INFO -Q interactive,batch,training,ingestion
#   beat       celery -A churn_platform beat -l INFO
ARG PYTHON_VERSION=3.11

# --- build: install the pinned requirements into a virtualenv -------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# Every requirement ships a manylinux wheel (psycopg2-binary, numpy, pandas, scikit-learn), so
# the build needs no compiler and the runtime stage no build tools.
RUN pip install --upgrade pip \
 && pip install -r /tmp/requirements.txt

# --- runtime: the virtualenv and the code, run as an unprivileged user -----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_ENV=production \
    LOG_FORMAT=json \
    CHURN_VAR_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    GUNICORN_BIND=0.0.0.0:8000
RUN groupadd --system --gid 10001 churn \
 && useradd --system --uid 10001 --gid churn --home-dir /app --shell /usr/sbin/nologin churn \
 && mkdir -p /data /tmp/prometheus \
 && chown churn:churn /data /tmp/prometheus
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY . /app
# Static files are collected into the image; a throwaway key satisfies the production checks
# for this one command and is not kept in any layer's environment.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    DJANGO_ALLOWED_HOSTS=localhost \
    PROMETHEUS_MULTIPROC_DIR= \
    python manage.py collectstatic --no-input -v0
USER churn:churn
EXPOSE 8000 9808
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["gunicorn", "churn_platform.wsgi:application", "-c", "gunicorn.conf.py"]
