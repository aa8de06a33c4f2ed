"""The jobs people, the sensor and the schedules launch: ingest a cohort, score a cohort, train the models.

Why these shapes. In Dagster 1.13 one asset job may hold assets of at most one partitions
definition, plus unpartitioned assets (selecting `training_slices` (cohorts) together with
`unet_model` (model inputs) fails with "Selected assets must have the same partitions
definitions"). So:

- `ingest_job` and `score_cohort_job` are partitioned by `cohorts`: one run, one cohort.
- `train_models_job` holds `training_splits` and the classifier assets (unpartitioned) and the
  U-Net assets (partitioned by model input); its schedule launches one run per model input for
  `training_splits` + the U-Net assets (so the blocking split check gates each U-Net run) and one
  unpartitioned run for the classifier assets (a run's asset selection picks which).
- `training_slices` (per cohort) joins neither: a person materializes it per labelled cohort
  (UI, or `dg launch --assets training_slices --partition C`). A new cohort must never start
  training work. `unet_model` trains on the patients that `training_splits` lists (every cohort
  with training slices, or those named in its `training_cohorts` config).
"""

import dagster as dg

from gbm_assets.defs.partitions import cohorts_partitions

INGEST_JOB = "ingest_job"
SCORE_COHORT_JOB = "score_cohort_job"
TRAIN_MODELS_JOB = "train_models_job"

INGEST_ASSETS: tuple[str, ...] = ("raw_cohort", "clinical_records")
RESCORE_ASSETS: tuple[str, ...] = (
    "lesion_masks",
    "radiomic_features",
    "radiomic_features_wide",
    "radiomics_exclusions",
    "radiomics_provenance",
    "tumor_burden",
    "tumor_location",
    "tumor_progression",
    "subtype_predictions",
    "idh_predictions",
    "short_survival_predictions",
    "survival_view",
)
"""The part of the scoring path that depends on the champion models (U-Nets, classifier):
what the nightly schedule re-runs. Ingest and preprocessing do not change with the models."""

SCORE_COHORT_ASSETS: tuple[str, ...] = (*INGEST_ASSETS, "preprocessed_volumes", *RESCORE_ASSETS)
"""The per-cohort scoring path, raw files to subtype predictions and the survival view."""

SPLIT_ASSETS: tuple[str, ...] = ("training_splits",)
"""Unpartitioned: every training cohort's patients and splits, with the blocking leak check."""
UNET_ASSETS: tuple[str, ...] = ("unet_model", "unet_champion", "segmentation_metrics")
"""Partitioned by model input (t1, t1c, t2, flair, stack)."""
CLASSIFIER_ASSETS: tuple[str, ...] = (
    "subtype_training_table", "subtype_classifier", "subtype_champion", "target_training_table",
    "idh_classifier", "idh_champion", "short_survival_classifier", "short_survival_champion", "survival_model",
)  # fmt: skip
"""Unpartitioned."""
TRAIN_MODELS_ASSETS: tuple[str, ...] = SPLIT_ASSETS + UNET_ASSETS + CLASSIFIER_ASSETS

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    partitions_def=cohorts_partitions,
    description="Validate a cohort's files and normalise its clinical table.",
    tags={"gbm/path": "ingest"},
)

score_cohort_job = dg.define_asset_job(
    SCORE_COHORT_JOB,
    selection=dg.AssetSelection.assets(*SCORE_COHORT_ASSETS),
    partitions_def=cohorts_partitions,
    description="Score one cohort: validate its files, preprocess, segment, extract radiomics, "
    "measure tumour burden and predict subtypes with the champion models.",
    tags={"gbm/path": "score"},
)

train_models_job = dg.define_asset_job(
    TRAIN_MODELS_JOB,
    selection=dg.AssetSelection.assets(*TRAIN_MODELS_ASSETS),
    description="Retrain the per-input U-Nets (one run per model input partition) and the "
    "subtype classifier (one unpartitioned run) on every labelled cohort.",
    tags={"gbm/path": "train"},
)
