"""The code location loads (as `dg` and `dagster` load it) and exposes exactly the platform's definitions."""

import dagster as dg

from gbm_assets_tests.conftest import code_location

ASSETS = {
    "raw_cohort", "clinical_records",
    "preprocessed_volumes", "training_slices", "training_splits", "unet_model", "unet_champion", "segmentation_metrics", "lesion_masks",
    "radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance", "tumor_burden", "tumor_location",
    "tumor_progression", "survival_model",
    "subtype_training_table", "subtype_classifier", "subtype_champion", "subtype_predictions", "survival_view",
    "target_training_table", "idh_classifier", "idh_champion", "idh_predictions",
    "short_survival_classifier", "short_survival_champion", "short_survival_predictions",
}  # fmt: skip
CHECKS = {
    "raw_cohort_patients_complete", "raw_cohort_patient_ids_unique", "raw_cohort_images_unique", "raw_cohort_timepoints_consistent",
    "clinical_records_cover_imaged_patients", "training_splits_subjects_in_one_split", "unet_model_weights_finite", "unet_model_beats_champion",
    "segmentation_metrics_test_dice_above_floor",
    "lesion_masks_empty_rate_below_threshold", "radiomic_features_nan_rate_below_threshold",
    "tumor_burden_predicted_volume_agrees_with_truth", "tumor_location_registration_above_floor",
    "subtype_training_table_covers_every_subtype", "subtype_classifier_beats_majority_baseline",
    "subtype_classifier_beats_champion",
    "idh_classifier_beats_majority_baseline", "idh_classifier_beats_champion",
    "short_survival_classifier_beats_majority_baseline", "short_survival_classifier_beats_champion",
}  # fmt: skip
JOBS = {"ingest_job", "score_cohort_job", "train_models_job", "demo_prepare", "demo_splits", "demo_unet", "demo_score",
        "demo_longitudinal", "demo_classifier", "demo_predict"}
SENSORS = {"new_cohort_sensor", "automation_conditions_sensor"}
SCHEDULES = {"nightly_rescore_schedule", "weekly_retrain_schedule"}
RESOURCES = {"data_root", "table_io_manager", "mlflow", "compute"}


def test_asset_keys_are_pinned():
    assert {k.to_user_string() for k in code_location().resolve_all_asset_keys()} == ASSETS


def test_checks_are_pinned():
    assert {k.name for k in code_location().resolve_asset_graph().asset_check_keys} == CHECKS


def test_jobs_sensors_schedules_and_resources_are_pinned():
    defs = code_location()
    assert {j.name for j in defs.jobs} == JOBS
    assert {s.name for s in defs.sensors} == SENSORS
    assert {s.name for s in defs.schedules} == SCHEDULES
    assert set(defs.resources) == RESOURCES


def test_every_job_resolves_and_lineage_runs_from_raw_cohort_to_predictions():
    defs = code_location()
    for job in JOBS:
        assert defs.resolve_job_def(job) is not None
    graph = defs.resolve_asset_graph()
    upstream = graph.get(dg.AssetKey("subtype_predictions")).parent_keys
    assert {k.to_user_string() for k in upstream} >= {"radiomic_features_wide", "subtype_champion"}


def test_the_module_dagster_loads_is_the_defs_folder():
    from gbm_assets import definitions

    loaded = dg.Definitions.merge(definitions.defs())  # what `dagster -m gbm_assets.definitions` and `dg` load
    assert {k.to_user_string() for k in loaded.resolve_all_asset_keys()} == ASSETS
