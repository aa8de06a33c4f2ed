# gbm_assets: every target creates .venv on first use, so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export GBM_DATA_ROOT ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster
DEMO_COHORT ?= demo
DEMO_PATIENTS ?= 24
DEMO_SEED ?= 7
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo test test-fast dev validate sql clean-data

# The install order matters:
# - torch==2.13.0 exactly: it resolves to the CPU wheel on the reference machines; a looser
#   pin pulls several GB of CUDA packages.
# - pyradiomics has no wheel for Python 3.11, and its source build compiles against numpy,
#   so numpy (and its build helpers) go in first and pyradiomics builds with
#   --no-build-isolation. 3.0.1 is used because the 3.1.0 sdist on PyPI ships without its
#   C headers and reports a wrong version.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip "setuptools>=68,<90" wheel
	$(PIP) numpy Cython versioneer
	$(PIP) torch==2.13.0
	$(PIP) --no-build-isolation pyradiomics==3.0.1
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/gbm-assets synth --cohort $(DEMO_COHORT) --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED)
	$(BIN)/dagster asset materialize -m gbm_assets.definitions --select 'raw_cohort,clinical_records' --partition $(DEMO_COHORT)
	$(BIN)/gbm-assets sql "select cohort, status, count(*) as patients from raw_cohort group by all order by all"
	@echo
	@echo "Open the UI:      make dev   (then http://127.0.0.1:3000)"
	@echo "Query the tables: $(BIN)/gbm-assets sql \"select * from raw_cohort limit 5\""

test: install
	$(PY) -m pytest -n 2 -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -n 2 -q -m "not slow"

validate: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean-data:
	rm -rf $(GBM_DATA_ROOT) $(DAGSTER_HOME)
