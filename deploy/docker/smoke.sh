#!/usr/bin/env bash
# `make image-smoke`: build the image on the registry-free Debian base and run it for real.
#
# Builds (or reuses) the debootstrap base, builds the image with this machine's pip settings
# (deploy/docker/pip-build-context.py; nothing of them is kept), then on the host network and
# against the host's PostgreSQL and Redis: migrates, trains a model with the bundled data, starts
# web (read-only root filesystem, tmpfs /tmp) and a worker, waits for /readyz, creates an API key
# inside the container, scores a record over HTTP, runs a batch job through the worker, checks
# that every process runs as the unprivileged user and that the root filesystem refuses writes,
# takes a backup in a one-shot container, prints the image size, the build time and the total time, and removes every container and the
# volume it made, also when a step fails.
#
# Its own database and Redis indexes, so it never meets the test suite (churn_ci, 14/15):
#   SMOKE_DATABASE (churn_smoke), SMOKE_REDIS_DB (12), SMOKE_BROKER_DB (13): a stock Redis has 16 databases and the suite uses 14 and 15, PGHOST/PGPORT.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$SECONDS
say() { printf '[smoke] %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

pg_host="${PGHOST:-127.0.0.1}" pg_port="${PGPORT:-5432}"
database="${SMOKE_DATABASE:-churn_smoke}"
redis_db="${SMOKE_REDIS_DB:-12}" broker_db="${SMOKE_BROKER_DB:-13}"
image="${SMOKE_IMAGE:-churn-platform:smoke}"
prefix="churn-smoke-$$"
volume="$prefix-data"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
web_port="$(free_port)" metrics_port="$(free_port)"
base_url="http://127.0.0.1:$web_port"

containers=()
cleanup() {
  local status=$?
  if [ $status -ne 0 ] && [ ${#containers[@]} -gt 0 ]; then
    for c in "${containers[@]}"; do
      docker container inspect "$c" >/dev/null 2>&1 && docker logs --tail 30 "$c" 2>&1 | sed "s/^/[smoke] $c| /"
    done
  fi
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  rm -rf .pip-build
  say "removed ${#containers[@]} containers and volume $volume; total $((SECONDS - started))s"
  exit $status
}
trap cleanup EXIT

# --- build ---------------------------------------------------------------------------------
base="$(deploy/docker/base-image.sh)"
python3 deploy/docker/pip-build-context.py .pip-build | sed 's/^/[smoke] /'
say "building $image on $base"
build_started=$SECONDS
# The legacy builder: Debian's docker.io has no buildx, and the Dockerfile needs no BuildKit.
DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE="$base" -t "$image" . >/tmp/"$prefix"-build.log 2>&1 \
  || { tail -40 /tmp/"$prefix"-build.log; rm -f /tmp/"$prefix"-build.log; fail "docker build"; }
rm -f /tmp/"$prefix"-build.log
build_seconds=$((SECONDS - build_started))
size_bytes="$(docker image inspect -f '{{.Size}}' "$image")"
say "image $image: $((size_bytes / 1024 / 1024)) MB, built in ${build_seconds}s"

# --- a clean database and Redis indexes ------------------------------------------------------
PGOPTIONS='-c client_min_messages=warning' psql -h "$pg_host" -p "$pg_port" -U postgres -qc "DROP DATABASE IF EXISTS $database" >/dev/null
PGOPTIONS='-c client_min_messages=warning' psql -h "$pg_host" -p "$pg_port" -U postgres -qc "CREATE DATABASE $database" >/dev/null
redis-cli -h 127.0.0.1 -n "$redis_db" flushdb >/dev/null
redis-cli -h 127.0.0.1 -n "$broker_db" flushdb >/dev/null
docker volume create "$volume" >/dev/null

secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(64))')"
common=(
  --network host -v "$volume:/data"
  -e DJANGO_SECRET_KEY="$secret" -e DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost
  -e DATABASE_URL="postgres://postgres@$pg_host:$pg_port/$database"
  -e REDIS_URL="redis://127.0.0.1:6379/$redis_db" -e CELERY_BROKER_URL="redis://127.0.0.1:6379/$broker_db"
  -e DATA_SOURCE_ENCRYPTION_KEY="$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
)
# What the app must write on a read-only root: /tmp (metric files, gunicorn's heartbeat, temp
# files of uploads) as tmpfs; /data is the artifacts volume.
readonly_root=(--read-only --tmpfs /tmp:rw,mode=1777,size=256m)

run_once() {  # name, command...: a one-shot container, removed afterwards; prints its last lines
  local name="$prefix-$1" output; shift
  containers+=("$name")
  output="$(docker run --name "$name" "${common[@]}" "${readonly_root[@]}" "$image" "$@" 2>&1)" \
    || { printf '%s\n' "$output" | tail -20; fail "$name"; }
  docker rm "$name" >/dev/null
  printf '%s\n' "$output" | grep -E "${SUMMARY:-.}" | tail -2 | sed 's/^/[smoke]   /'
}

say "migrate (one-shot container)"
run_once migrate python manage.py migrate --no-input
say "train a model on the bundled data (one-shot container)"
SUMMARY='^Model version' run_once train python manage.py train_model --data data/telco_customer_churn.csv --activate --algorithm logistic

web="$prefix-web" worker="$prefix-worker"
containers+=("$web" "$worker")
docker run -d --name "$web" "${common[@]}" "${readonly_root[@]}" \
  -e GUNICORN_BIND="127.0.0.1:$web_port" -e WEB_CONCURRENCY=2 -e CHURN_SERVICE_NAME=churn-web "$image" >/dev/null
docker run -d --name "$worker" "${common[@]}" "${readonly_root[@]}" \
  -e CELERY_METRICS_PORT="$metrics_port" -e CHURN_SERVICE_NAME=churn-worker "$image" \
  celery -A churn_platform worker -l INFO -Q interactive,batch,training,ingestion --concurrency 2 >/dev/null

say "waiting for $base_url/readyz"
for _ in $(seq 1 90); do
  curl -fsS "$base_url/readyz" >/dev/null 2>&1 && break
  [ "$(docker inspect -f '{{.State.Running}}' "$web")" = true ] || fail "web exited"
  sleep 1
done
curl -fsS "$base_url/readyz" | sed 's/^/[smoke] readyz: /'; echo

# --- the API, for real -----------------------------------------------------------------------
key="$(docker exec "$web" python manage.py create_api_key --department smoke --name smoke | tail -1)"
[ -n "$key" ] || fail "no API key"
api() {  # method, path, [json]: the response body; fails on a non-2xx status
  curl -fsS -X "$1" "$base_url/api/v1/$2" -H "X-API-Key: $key" -H 'X-Forwarded-Proto: https' \
    -H 'Content-Type: application/json' ${3:+--data "$3"}
}
record='{"customer_id": "SMOKE-1", "gender": "female", "senior_citizen": false, "partner": true, "dependents": false,
  "tenure_months": 2, "phone_service": true, "multiple_lines": "No", "internet_service": "Fiber optic",
  "online_security": "No", "online_backup": "No", "device_protection": "No", "tech_support": "No",
  "streaming_tv": "Yes", "streaming_movies": "Yes", "contract_type": "Month-to-month", "paperless_billing": true,
  "payment_method": "Electronic check", "monthly_charges": 85.0, "total_charges": 170.0}'
api POST customers/ "$record" >/dev/null
probability="$(api POST predictions/ "$record" | python3 -c 'import json, sys; print(json.load(sys.stdin)["churn_probability"])')"
say "scored SMOKE-1 over HTTP: churn probability $probability"

job="$(api POST predictions/jobs/ '{"customer_ids": ["SMOKE-1"]}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
status=queued
for _ in $(seq 1 120); do
  status="$(api GET "predictions/jobs/$job/" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')"
  case "$status" in succeeded) break ;; failed|cancelled|partially_succeeded) fail "batch job $job $status" ;; esac
  sleep 1
done
[ "$status" = succeeded ] || fail "batch job $job still $status"
say "batch job $job succeeded on the worker container"
curl -fsS "http://127.0.0.1:$metrics_port/readyz" >/dev/null || fail "worker readiness"

# --- isolation -------------------------------------------------------------------------------
for c in "$web" "$worker"; do
  uids="$(docker top "$c" -eo pid,uid | awk 'NR > 1 {print $2}' | sort -u | tr '\n' ' ')"
  [ "$uids" = "10001 " ] || fail "$c runs processes as uid(s) $uids, not only 10001 (churn)"
  [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$c")" = true ] || fail "$c root filesystem is writable"
  if docker exec "$c" sh -c 'echo x > /app/probe' 2>/dev/null; then fail "$c could write to /app"; fi
  say "$c: $(docker top "$c" -eo pid | tail -n +2 | wc -l) processes, all uid 10001 (churn); root filesystem read-only"
done

say "backup (one-shot container, as the compose service and the CronJob run it)"
SUMMARY='^/data' run_once backup python manage.py backup --output /data/backups

say "OK: image $((size_bytes / 1024 / 1024)) MB, build ${build_seconds}s, smoke total $((SECONDS - started))s"
