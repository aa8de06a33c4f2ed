# gbm_assets: every target creates .venv on first use, so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export GBM_DATA_ROOT ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster
# Subprocess output (compilers, servers) is read as UTF-8 whatever the machine's locale.
export PYTHONUTF8 ?= 1
# No usage telemetry leaves the machine (the CLIs start before gbm_assets can set these itself).
export MLFLOW_DISABLE_TELEMETRY ?= true
export DAGSTER_DISABLE_TELEMETRY ?= true
DEMO_COHORT ?= demo
DEMO_PATIENTS ?= 40
DEMO_SEED ?= 7
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo demo-quick demo-real test test-fast screenshots dev validate sql clean-data

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

MATERIALIZE := $(BIN)/dagster asset materialize -m gbm_assets.definitions
DEMO_INPUTS ?= t1 t1c t2 flair stack all

# The whole graph on the synthetic demo cohort, in ONE process (gbm_assets/demo.py: torch, MLflow
# and the code location imported once). Each stage is a named job (demo_prepare, demo_splits,
# demo_unet per model input, demo_score, demo_classifier, demo_predict) run in lineage order on
# the project's Dagster instance, tagged gbm/demo, so the UI (make dev) shows every run afterwards.
# Run configs: demo/*.yaml. Prints per-stage times and the headline tables at the end.
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m gbm_assets.demo --cohort $(DEMO_COHORT) --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED) --inputs $(DEMO_INPUTS) --config-dir demo
	@echo
	@echo "Open the UI:      make dev   (then http://127.0.0.1:3000)"
	@echo "Query the tables: $(BIN)/gbm-assets sql \"select * from radiomic_features_wide limit 5\""

# The whole graph in minutes, at lower quality (README "The demo cohort" has the trade-off): phantoms at
# 64 x 64 x 32 and 3 x 3 x 5 mm, one U-Net (stack, 20 epochs), one CV repeat per classifier (demo/quick/).
# Its own data root and Dagster home, so its 64-pixel models never meet make demo's in one registry.
QUICK_DATA_ROOT ?= $(CURDIR)/data-quick
QUICK_DAGSTER_HOME ?= $(CURDIR)/.dagster-quick
demo-quick: install
	mkdir -p $(QUICK_DAGSTER_HOME) && cp dagster.yaml $(QUICK_DAGSTER_HOME)/dagster.yaml
	GBM_DATA_ROOT=$(QUICK_DATA_ROOT) DAGSTER_HOME=$(QUICK_DAGSTER_HOME) $(PY) -m gbm_assets.demo --cohort $(DEMO_COHORT) \
		--patients $(DEMO_PATIENTS) --seed $(DEMO_SEED) --inputs stack --config-dir demo/quick
	@echo
	@echo "Open the UI:      make dev GBM_DATA_ROOT=$(QUICK_DATA_ROOT) DAGSTER_HOME=$(QUICK_DAGSTER_HOME)"

# The real TCGA-06-1802 case from ../shared/data (HD-GLIO labels, Xena clinical row), scored
# from ingestion to subtype predictions with the models `make demo` trained (run it first).
REAL_COHORT ?= tcga-real
demo-real: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/gbm-assets assemble-real --cohort $(REAL_COHORT) --shared-data ../shared/data
	$(MATERIALIZE) --select 'raw_cohort,clinical_records,preprocessed_volumes' --partition $(REAL_COHORT) -c demo/real.yaml
	$(MATERIALIZE) --select 'lesion_masks,radiomic_features,radiomic_features_wide,radiomics_exclusions,radiomics_provenance,tumor_burden,tumor_location,subtype_predictions,survival_view' --partition $(REAL_COHORT)
	$(BIN)/gbm-assets sql "select c.patient_id, c.subtype as true_subtype, round(c.survival_months, 1) as survival_months, p.predicted_subtype, p.model_version from clinical_records c join subtype_predictions p using (cohort, patient_id) where cohort = '$(REAL_COHORT)'"
	$(BIN)/gbm-assets sql "select roi_source, region, round(volume_ml, 1) as volume_ml, round(dice, 3) as dice from tumor_burden where cohort = '$(REAL_COHORT)' order by all"

# The browser test drives Debian's Chromium; install_browser.sh installs it (and playwright,
# which must never download its own browser) only when missing.
# The cluster test (gbm_assets_tests/cluster) starts its own PostgreSQL and Dask cluster;
# install_cluster.sh installs Debian's postgresql and the Python cluster packages only when missing.
# install_brats_eval.sh puts the official BraTS evaluation in .venv-brats (its pins clash with ours), which
# the lesion-wise metrics test runs as the reference.
test: install
	bash scripts/install_browser.sh
	bash scripts/install_cluster.sh
	bash scripts/install_brats_eval.sh
	$(PY) -m pytest -n 2 -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -n 2 -q -m "not slow"

# Rewrites docs/screenshots/ (the asset graph, segmentation_metrics' page with its pictures) from
# the browser test; the test alone (make test) never touches the tracked PNGs.
screenshots: install
	bash scripts/install_browser.sh
	GBM_UPDATE_SCREENSHOTS=1 GBM_REQUIRE_BROWSER=1 $(PY) -m pytest -n 0 -q -p no:randomly gbm_assets_tests/e2e/test_pictures.py

# `dg check defs` loads the code location as `dg` does (the defs folder, autoloaded);
# `dagster definitions validate` loads it through workspace.yaml, as `make dev` does.
validate: install $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dg check defs
	$(BIN)/dagster definitions validate -w workspace.yaml

# The Dagster UI (webserver + daemon) on :3000 and, beside it, MLflow's UI on the data root's store on
# :5000: asset pages link to their MLflow runs and model versions and show their pictures from it.
dev: install $(DAGSTER_HOME)/dagster.yaml
	mkdir -p $(GBM_DATA_ROOT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(GBM_DATA_ROOT)/mlflow.db --host 127.0.0.1 --port 5000 & \
	mlflow_pid=$$!; trap "kill $$mlflow_pid 2>/dev/null" EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean-data:
	rm -rf $(GBM_DATA_ROOT) $(DAGSTER_HOME)
