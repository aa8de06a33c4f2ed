# gbm_assets: every target creates .venv on first use, so a fresh clone needs nothing else.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export GBM_DATA_ROOT ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(CURDIR)/.dagster
DEMO_COHORT ?= demo
DEMO_PATIENTS ?= 40
DEMO_SEED ?= 7
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo demo-real test test-fast dev validate sql clean-data

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
DEMO_INPUTS ?= t1 t1c t2 flair stack

# The whole graph on the synthetic demo cohort. Assets with different partitions (cohorts,
# model inputs, none) run as separate materializations, in lineage order; every run is recorded
# in the project's Dagster instance, so the UI (make dev) shows them afterwards.
demo: install $(DAGSTER_HOME)/dagster.yaml
	@start=$$(date +%s); \
	set -e; \
	$(BIN)/gbm-assets synth --cohort $(DEMO_COHORT) --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED); \
	$(MATERIALIZE) --select 'raw_cohort,clinical_records,preprocessed_volumes,training_slices' --partition $(DEMO_COHORT) -c demo/prepare.yaml; \
	for input in $(DEMO_INPUTS); do \
	  $(MATERIALIZE) --select 'unet_model,unet_champion,segmentation_metrics' --partition $$input -c demo/unet.yaml; \
	done; \
	$(MATERIALIZE) --select 'lesion_masks,radiomic_features,radiomic_features_wide,radiomics_exclusions,radiomics_provenance,tumor_burden' --partition $(DEMO_COHORT); \
	$(MATERIALIZE) --select 'subtype_training_table,subtype_classifier'; \
	$(MATERIALIZE) --select 'subtype_predictions,survival_view' --partition $(DEMO_COHORT); \
	echo; echo "demo finished in $$(( $$(date +%s) - start )) s"
	$(BIN)/gbm-assets sql "select sequence, split, metric, round(value, 3) as value from segmentation_metrics where split = 'test' and metric in ('dice_3d', 'hd95_mm', 'f1') order by all"
	$(BIN)/gbm-assets sql "select model, round(balanced_accuracy, 3) as balanced_accuracy, round(macro_f1, 3) as macro_f1, model_version, promoted from subtype_classifier"
	$(BIN)/gbm-assets sql "select predicted_subtype, count(*) as patients from subtype_predictions group by 1 order by 2 desc"
	@echo
	@echo "Open the UI:      make dev   (then http://127.0.0.1:3000)"
	@echo "Query the tables: $(BIN)/gbm-assets sql \"select * from radiomic_features_wide limit 5\""

# The real TCGA-06-1802 case from ../shared/data (HD-GLIO labels, Xena clinical row), scored
# from ingestion to subtype predictions with the models `make demo` trained (run it first).
REAL_COHORT ?= tcga-real
demo-real: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/gbm-assets assemble-real --cohort $(REAL_COHORT) --shared-data ../shared/data
	$(MATERIALIZE) --select 'raw_cohort,clinical_records,preprocessed_volumes' --partition $(REAL_COHORT) -c demo/real.yaml
	$(MATERIALIZE) --select 'lesion_masks,radiomic_features,radiomic_features_wide,radiomics_exclusions,radiomics_provenance,tumor_burden,subtype_predictions,survival_view' --partition $(REAL_COHORT)
	$(BIN)/gbm-assets sql "select c.patient_id, c.subtype as true_subtype, round(c.survival_months, 1) as survival_months, p.predicted_subtype, p.model_version from clinical_records c join subtype_predictions p using (cohort, patient_id) where cohort = '$(REAL_COHORT)'"
	$(BIN)/gbm-assets sql "select roi_source, region, round(volume_ml, 1) as volume_ml, round(dice, 3) as dice from tumor_burden where cohort = '$(REAL_COHORT)' order by all"

# The browser test drives Debian's Chromium; install_browser.sh installs it (and playwright,
# which must never download its own browser) only when missing.
test: install
	bash scripts/install_browser.sh
	$(PY) -m pytest -n 2 -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -n 2 -q -m "not slow"

validate: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean-data:
	rm -rf $(GBM_DATA_ROOT) $(DAGSTER_HOME)
