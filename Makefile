# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv deps dev-deps migrate lint worker beat clean image-smoke bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt

dev-deps: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt

## run: install, migrate, load the demo customers, train a model, print an admin login and an API key, serve.
run: deps
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py bootstrap_demo --host $(HOST) --port $(PORT) $(if $(ROTATE),--rotate)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## test: install the test dependencies and run the whole suite.
test: dev-deps
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports

worker: deps
	$(BIN)/celery -A churn_platform worker -l INFO -Q interactive,batch,training,ingestion

beat: deps
	$(BIN)/celery -A churn_platform beat -l INFO

## bench: the performance table of issue 13 (bench/run_table.py: scoring API, batch job, ingestion),
## measured next to its targets. Full size takes ~30 min on 2 cores; BENCH_ARGS="--quick" a few minutes,
## e.g. BENCH_ARGS="--web-workers 1,2 --job-workers 1,2". Needs PostgreSQL, Redis and wrk on 127.0.0.1.
bench: deps
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/run_table.py $(BENCH_ARGS)

## image-smoke: build the image on a debootstrap Debian base and run migrate, web and worker for real.
image-smoke:
	deploy/docker/smoke.sh

clean:
	rm -rf $(VENV) var/test
