# Two commands on a fresh machine with only Python 3: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BOOT := .venv-boot
UV := $(BOOT)/bin/uv
PY := $(VENV)/bin/python
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1

.PHONY: demo demo-cluster redis test test-fast install browser check schema bench clean

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==0.13.8

$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --all-extras --python $(PYTHON)
	touch $@

install: $(VENV)/.installed

# The browser tests drive Debian's Chromium through Playwright (Playwright's own download needs a CDN).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
browser:
ifeq ($(CHROMIUM),)
	@command -v apt-get >/dev/null || { echo "make test needs Chromium at /usr/bin/chromium: install it with your OS package manager"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
endif

# `make demo-cluster` needs a Celery broker: Redis from the OS packages (idempotent, like `browser`).
REDIS := $(shell command -v redis-server 2>/dev/null)
redis:
ifeq ($(REDIS),)
	@command -v apt-get >/dev/null || { echo "make demo-cluster needs redis-server: install it with your OS package manager"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
endif

check: install
	$(VENV)/bin/pipespec check pipelines/

schema: install
	$(VENV)/bin/pipespec schema

demo: install
	$(PY) -m pipespec.local.demo

# The production topology in miniature: PostgreSQL, Redis, moto S3, an MLflow server, the Airflow
# control plane and two Celery workers sharing no disk, all on 127.0.0.1 (docs/deployment.md).
demo-cluster: install redis
	$(PY) -m pipespec.local.cluster.demo

test: install browser redis
	$(PY) -m pytest

# The spec language, the compiler and the steps that need no Airflow: seconds, with Airflow unimportable.
test-fast: install
	PIPESPEC_TEST_WITHOUT_AIRFLOW=1 $(PY) -m pytest -m "not airflow and not slow and not browser"

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(BOOT) .airflow .pipespec-cache
