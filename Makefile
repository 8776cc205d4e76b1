# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv deps dev-deps migrate lint worker beat clean image-smoke

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

## image-smoke: build the image on a debootstrap Debian base and run migrate, web and worker for real.
image-smoke:
	deploy/docker/smoke.sh

clean:
	rm -rf $(VENV) var/test
