"""The two jobs people and the sensor and schedules launch: score one cohort, train the models.

Asset keys are written here as strings, so this module never imports an asset module (asset
modules may import `EAGER` from this package without a cycle). `build_jobs(assets)` builds each
job over the keys that the given assets actually provide: a job may then be wired while parts
of the graph are still being written, and gains assets as they land. Once every key exists the
filter changes nothing; `missing_keys` says what is still absent.

Why two shapes of job. In Dagster 1.13 one asset job may hold assets of at most one partitions
definition, plus unpartitioned assets (selecting `training_slices` (cohorts) together with
`unet_model` (sequences) fails with "Selected assets must have the same partitions
definitions"). So:

- `score_cohort_job` is partitioned by `cohorts`: one run scores one cohort.
- `train_models_job` holds `unet_model` and `segmentation_metrics` (partitioned by sequence)
  and `subtype_training_table` and `subtype_classifier` (unpartitioned); it takes the
  sequence partitions. Its schedule launches one run per sequence for the U-Net assets and one
  unpartitioned run for the classifier assets (a run's asset selection picks which).
- `training_slices` (per cohort) cannot join either job, and is left out on purpose: it is
  materialized per labelled cohort by a person (UI, or `dagster asset materialize --select
  training_slices --partition C`). It fails on a cohort without masks, and a new cohort must
  never start training work. `unet_model` trains on every cohort that has training slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from gbm_assets.defs.partitions import cohorts_partitions

SCORE_COHORT_JOB = "score_cohort_job"
TRAIN_MODELS_JOB = "train_models_job"

RESCORE_ASSETS: tuple[str, ...] = (
    "lesion_masks",
    "radiomic_features",
    "radiomics_exclusions",
    "radiomics_provenance",
    "tumor_burden",
    "subtype_predictions",
    "survival_view",
)
"""The part of the scoring path that depends on the champion models (U-Nets, classifier):
what the nightly schedule re-runs. Ingest and preprocessing do not change with the models."""

SCORE_COHORT_ASSETS: tuple[str, ...] = ("raw_cohort", "clinical_records", "preprocessed_volumes", *RESCORE_ASSETS)
"""The per-cohort scoring path, raw files to subtype predictions and the survival view."""

UNET_ASSETS: tuple[str, ...] = ("unet_model", "unet_champion", "segmentation_metrics")
"""Partitioned by sequence (t1, t1c, t2, flair, stack)."""
CLASSIFIER_ASSETS: tuple[str, ...] = ("subtype_training_table", "subtype_classifier")
"""Unpartitioned."""
TRAIN_MODELS_ASSETS: tuple[str, ...] = UNET_ASSETS + CLASSIFIER_ASSETS

AssetLike = dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset


def provided_keys(assets: Iterable[AssetLike]) -> set[str]:
    """User strings (`raw_cohort`) of every asset key the given definitions provide."""
    keys: set[str] = set()
    for item in assets:
        item_keys = item.keys if isinstance(item, dg.AssetsDefinition) else {item.key}
        keys.update(k.to_user_string() for k in item_keys)
    return keys


def present(keys: Sequence[str], assets: Iterable[AssetLike]) -> list[str]:
    """`keys` that `assets` provide, in the order of `keys`."""
    provided = provided_keys(assets)
    return [k for k in keys if k in provided]


def missing_keys(assets: Iterable[AssetLike]) -> list[str]:
    """Keys the two jobs name that `assets` do not provide yet."""
    provided = provided_keys(assets)
    return [k for k in (*SCORE_COHORT_ASSETS, *TRAIN_MODELS_ASSETS) if k not in provided]


def build_jobs(assets: Iterable[AssetLike]) -> list[dg.UnresolvedAssetJobDefinition]:
    """`score_cohort_job` and `train_models_job` over the keys that `assets` provide.

    Both jobs always exist (a job over no assets is valid and does nothing), so the sensor and
    schedules that name them always resolve. Selecting an asset selects its checks too, and
    the other outputs of a multi-asset that cannot run them apart (`radiomic_features` writes
    `radiomic_features_wide`, `radiomics_exclusions` and `radiomics_provenance` together).
    """
    assets = list(assets)
    score = dg.define_asset_job(
        SCORE_COHORT_JOB,
        selection=dg.AssetSelection.keys(*present(SCORE_COHORT_ASSETS, assets)).required_multi_asset_neighbors(),
        partitions_def=cohorts_partitions,
        description="Score one cohort: validate its files, preprocess, segment, extract radiomics, "
        "measure tumour burden and predict subtypes with the champion models.",
        tags={"gbm/path": "score"},
    )
    train = dg.define_asset_job(
        TRAIN_MODELS_JOB,
        selection=dg.AssetSelection.keys(*present(TRAIN_MODELS_ASSETS, assets)).required_multi_asset_neighbors(),
        description="Retrain the per-sequence U-Nets (one run per sequence partition) and the "
        "subtype classifier (one unpartitioned run) on every labelled cohort.",
        tags={"gbm/path": "train"},
    )
    return [score, train]
