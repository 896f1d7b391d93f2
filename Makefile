# The lab's commands. `make help` lists them. Native runs use a virtualenv in .venv; nothing is installed globally.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
API_DIR := services/model-api
MODEL_DIR ?= $(CURDIR)/$(API_DIR)/artifacts
ARTIFACTS := $(MODEL_DIR)/metadata.json
API_PORT ?= 8000
# prometheus-client's multiprocess files for a native API; gunicorn empties the folder when it starts.
METRICS_DIR ?= $(or $(TMPDIR),/tmp)/model-lab-metrics-$(API_PORT)
PYTEST_ARGS ?=
LOCUST_WORKERS ?= 2

export LAB_MODEL_DIR := $(MODEL_DIR)

.PHONY: help install bentoml-install bentoml lock soak train api locust locust-workers master-host swarm swarm-down diagnose dashboard test test-unit test-integration test-compose test-browser lint format bench bench-locust bench-startup experiment tune capacity capacity-check screenshots profile flamegraphs compare clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with everything native runs and tests need (requirements.lock)

# Plain pip and the lock: no lock tool is needed to install, only to re-resolve (`make lock`).
$(VENV)/.installed: requirements.lock $(API_DIR)/pyproject.toml locust/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e $(API_DIR) -e locust
	touch $@

# One resolution pins every package: requirements.in (direct dependencies, the packages' pyproject.toml among
# them) into requirements.lock; then each image's requirements.txt is its own inputs resolved under that lock, so
# a package has one version everywhere. uv resolves for the images' Python and platform wherever it runs, and
# keeps the pins a file already has unless the inputs demand otherwise: LOCK_ARGS="--upgrade-package NAME" moves one.
# The lab's own two packages stay out of the lock: install adds them editable, and a constraint cannot be a path.
LOCK_ARGS ?=
LOCK = $(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform linux --annotation-style line \
	--custom-compile-command "make lock" $(LOCK_ARGS)
lock: install ## re-resolve the pins (network): requirements.lock, then each image's requirements.txt under it
	$(LOCK) requirements.in --no-emit-package model-api --no-emit-package lab-locust -o requirements.lock
	$(LOCK) $(API_DIR)/pyproject.toml -c requirements.lock -o $(API_DIR)/requirements.txt
	$(LOCK) locust/requirements.in -c requirements.lock -o locust/requirements.txt
	grep -E '^($(BENTOML_LAB_PINS))==' requirements.lock > $(VENV)/lab-model-pins.txt
	$(LOCK) $(BENTOML_DIR)/requirements.in -c $(VENV)/lab-model-pins.txt -o $(BENTOML_DIR)/requirements.txt

# The BentoML service (services/bentoml/), an optional extra in a virtualenv of its own: BentoML needs other versions
# than the lock's of a few packages (certifi, opentelemetry-api), so `make lock` resolves it on its own, except for
# the packages that load and validate the lab's models, which take the lock's pins so that its pickles load there.
BENTOML_DIR := services/bentoml
BENTOML_VENV := .venv-bentoml
BENTOML_LAB_PINS := joblib|numpy|pydantic|pydantic-core|pydantic-settings|scikit-learn|scipy|threadpoolctl
BENTOML_PORT ?= 3000
# 127.0.0.1: this machine only. For the lab's containers to reach it (own-api.yaml) on Linux, the docker0 address
# (docs/own-api.md); 0.0.0.0 opens it to your network as well.
BENTOML_HOST ?= 127.0.0.1
BENTOML_ARGS ?=

bentoml-install: $(BENTOML_VENV)/.installed ## create .venv-bentoml with BentoML for services/bentoml (about a minute)

# The lab's model_api goes in editable and without its dependencies: the service imports only its artifact checks,
# schemas and settings.
$(BENTOML_VENV)/.installed: $(BENTOML_DIR)/requirements.txt $(API_DIR)/pyproject.toml
	$(PYTHON) -m venv $(BENTOML_VENV)
	$(BENTOML_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(BENTOML_DIR)/requirements.txt
	$(BENTOML_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e $(API_DIR)
	touch $@

# No usage reports to BentoML, and its home (models, logs) in the virtualenv rather than ~/bentoml.
bentoml: bentoml-install $(ARTIFACTS) ## the course-style BentoML service in the foreground on $BENTOML_HOST:$BENTOML_PORT (BENTOML_ARGS="--arg workers=2")
	cd $(BENTOML_DIR) && BENTOML_DO_NOT_TRACK=true BENTOML_HOME=$(CURDIR)/$(BENTOML_VENV)/home \
		$(CURDIR)/$(BENTOML_VENV)/bin/bentoml serve service:CreditRisk --host $(BENTOML_HOST) --port $(BENTOML_PORT) $(BENTOML_ARGS)

# Retrained whenever the installed packages or the training code change: artifacts are tied to one scikit-learn
# version, and the API refuses a folder that lacks what training now writes (the ONNX files, say).
$(ARTIFACTS): $(VENV)/.installed $(API_DIR)/model_api/train.py
	$(BIN)/python -m model_api.train --out $(MODEL_DIR)

train: install ## (re)train both models into services/model-api/artifacts
	$(BIN)/python -m model_api.train --out $(MODEL_DIR)

api: install $(ARTIFACTS) ## run the API in the foreground on 127.0.0.1:$API_PORT with $WEB_CONCURRENCY workers
	cd $(API_DIR) && PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR) \
		$(BIN)/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:$(API_PORT)

locust: install ## Locust master (UI on 127.0.0.1:8089) + $LOCUST_WORKERS workers against the native API
	cd locust && trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	for i in $$(seq $(LOCUST_WORKERS)); do $(BIN)/locust -f locustfile.py --worker --master-host 127.0.0.1 & done; \
	$(BIN)/locust -f locustfile.py,shapes --class-picker --master --master-bind-host 127.0.0.1 \
		--web-host 127.0.0.1 -H http://127.0.0.1:$(API_PORT)

# Locust workers on this machine for a lab whose master runs on another (docs/scaling.md#locust-workers-on-other-machines):
# the master's machine publishes its port 5557 to this one on purpose; nothing here listens on the network.
MASTER_HOST ?=
MASTER_PORT ?= 5557
locust-workers: master-host install ## $LOCUST_WORKERS Locust workers for a master on another machine: MASTER_HOST=192.168.1.20
	@cd locust && { ulimit -n 10000 2>/dev/null || ulimit -n $$(ulimit -Hn); }; trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	for i in $$(seq $(LOCUST_WORKERS)); do \
		$(BIN)/locust -f locustfile.py --worker --master-host $(MASTER_HOST) --master-port $(MASTER_PORT) & \
	done; \
	echo "$(LOCUST_WORKERS) Locust workers for the master at $(MASTER_HOST):$(MASTER_PORT); Ctrl-C stops them"; wait

master-host:
	@[ -n "$(MASTER_HOST)" ] || { echo "MASTER_HOST is not set: give the address of the machine where the lab's Locust master runs," \
		"e.g. make locust-workers MASTER_HOST=192.168.1.20 (docs/scaling.md#locust-workers-on-other-machines)" >&2; exit 2; }

swarm: install ## the lab as the Docker Swarm stack `lab` on this swarm manager (docs/scaling.md#the-lab-on-a-docker-swarm)
	$(BIN)/python -m lab.swarm up

swarm-down: install ## remove the stack `lab`; its volumes stay
	$(BIN)/python -m lab.swarm down

DIAGNOSE_ARGS ?=
diagnose: install ## the verdict now, its evidence and what to change, from the lab's Prometheus (DIAGNOSE_ARGS=--watch)
	$(BIN)/python -m experiments.diagnose $(DIAGNOSE_ARGS)

dashboard: install ## regenerate grafana/dashboards/lab.json from grafana/dashboard/ (commit both)
	$(BIN)/python -m grafana.dashboard

test: install ## run every test tier (unit, integration, compose); PYTEST_ARGS passes options to pytest
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## the fast tier only (seconds)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-integration: install ## real processes on 127.0.0.1
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test-compose: install ## the lab on a real Docker engine (compose.yaml, scenarios, a swarm)
	$(BIN)/pytest -m compose $(PYTEST_ARGS)

test-browser: install ## the lab's screens in Debian's chromium: the native lab's, and the compose lab's where Docker runs
	$(BIN)/pytest -m browser $(PYTEST_ARGS)

lint: install ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install $(ARTIFACTS) ## API benchmarks with wrk (see benchmarks/README.md); writes benchmarks/results/
	$(BIN)/python -m benchmarks.api_bench

bench-locust: install ## how many req/s one Locust process sends, against nginx (benchmarks/locust_bench.py)
	$(BIN)/python -m benchmarks.locust_bench

bench-startup: install ## the lab's own start-up: a fresh `compose up --build`, a warm one, the images' sizes (Docker)
	$(BIN)/python -m benchmarks.startup

SCENARIO ?= baseline
SCENARIOS ?= baseline cpu-bound io-bound
EXPERIMENT_ARGS ?=
# A native run serves the models from $(MODEL_DIR), so it trains them first if needed; Docker trains its own.
experiment: install $(if $(findstring --native,$(EXPERIMENT_ARGS)),$(ARTIFACTS)) ## run SCENARIO under the breaking-point load; report in reports/experiments/SCENARIO (EXPERIMENT_ARGS=--native: no Docker)
	$(BIN)/python -m experiments.run $(SCENARIO) $(EXPERIMENT_ARGS)

TUNE_BUDGET ?= 20m
TUNE_ARGS ?=
# tune and capacity-check start from compose.yaml and .env (API_CPUS, API_MEMORY), or from SCENARIO when you set it
SCENARIO_OPTION = $(if $(filter command line environment,$(origin SCENARIO)),--scenario $(SCENARIO))
# Like an experiment, a native tune serves the models from $(MODEL_DIR); the compose one builds its image.
tune: install $(if $(findstring --native,$(TUNE_ARGS)),$(ARTIFACTS)) ## sweep the API's configuration under the SLO within TUNE_BUDGET (20m), from .env or SCENARIO; reports/tune/ with tuned.yaml (TUNE_ARGS=--native)
	$(BIN)/python -m experiments.tune $(SCENARIO_OPTION) --budget $(TUNE_BUDGET) --model-dir $(MODEL_DIR) $(TUNE_ARGS)

RPS ?=
capacity: install ## RPS=500: how many replicas of the tuned configuration hold that load, by a queueing model (after make tune)
	@test -n "$(RPS)" || { echo "make capacity needs the load to plan for: make capacity RPS=500" >&2; exit 2; }
	$(BIN)/python -m experiments.capacity --rps $(RPS)

capacity-check: install ## the capacity model against real runs of 1 and 2 API replicas (Docker, about 5 min; not in CI)
	$(BIN)/python -m experiments.capacity_check $(SCENARIO_OPTION)

SCREENSHOTS_ARGS ?=
screenshots: install ## the guide's screenshots from a real run (compose lab, cpu-bound) into docs/img/screens (SCREENSHOTS_ARGS=--native)
	$(BIN)/python -m experiments.screenshots $(SCREENSHOTS_ARGS)

PROFILE_ARGS ?=
profile: install ## flame graph of the running lab's API under your load: reports/profiles/ (PROFILE_ARGS=--native, --target locust)
	$(BIN)/python -m experiments.profile $(PROFILE_ARGS)

flamegraphs: install $(ARTIFACTS) ## the flame graphs of docs/reading-flame-graphs.md, taken again natively (docs/img/flamegraphs/)
	$(BIN)/python -m experiments.flamegraphs

SOAK_ARGS ?=
soak: install $(if $(findstring --native,$(SOAK_ARGS)),$(ARTIFACTS)) ## hold SCENARIO at 70% of its breaking point for 30 min: memory per worker, errors, P99 drift (not in CI; SOAK_ARGS=--native)
	$(BIN)/python -m experiments.soak --scenario $(SCENARIO) $(SOAK_ARGS)

compare: install ## put the reports of SCENARIOS side by side: reports/experiments/comparison.md
	$(BIN)/python -m experiments.compare $(SCENARIOS)

clean: ## remove .venv, .venv-bentoml, trained artifacts and caches
	rm -rf $(VENV) $(BENTOML_VENV) $(API_DIR)/artifacts .pytest_cache .ruff_cache benchmarks/results
