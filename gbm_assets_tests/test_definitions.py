"""The code location loads and exposes the platform's assets, checks and jobs by name."""

from gbm_assets.definitions import defs

ASSETS = {
    "raw_cohort", "clinical_records",
    "preprocessed_volumes", "training_slices", "unet_model", "unet_champion", "segmentation_metrics", "lesion_masks",
    "radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance", "tumor_burden",
    "subtype_training_table", "subtype_classifier", "subtype_predictions", "survival_view",
}  # fmt: skip
CHECKS = {
    "raw_cohort_patients_complete", "raw_cohort_patient_ids_unique", "clinical_records_cover_imaged_patients",
    "training_slices_patients_in_one_split", "unet_model_weights_finite", "unet_model_beats_champion",
    "segmentation_metrics_test_dice_above_floor",
    "lesion_masks_empty_rate_below_threshold", "radiomic_features_nan_rate_below_threshold",
    "tumor_burden_predicted_volume_agrees_with_truth",
    "subtype_training_table_covers_every_subtype", "subtype_classifier_beats_majority_baseline",
    "subtype_predictions_probabilities_sum_to_one",
}  # fmt: skip


def test_asset_keys_are_pinned():
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == ASSETS


def test_checks_are_pinned():
    assert {k.name for k in defs.resolve_asset_graph().asset_check_keys} >= CHECKS


def test_lineage_runs_from_raw_cohort_to_predictions():
    graph = defs.resolve_asset_graph()
    upstream = graph.get(__import__("dagster").AssetKey("subtype_predictions")).parent_keys
    assert {k.to_user_string() for k in upstream} >= {"radiomic_features", "subtype_classifier"}
    assert defs.resolve_job_def("ingest_job") is not None


def test_automation_is_wired_over_every_asset_it_names():
    from gbm_assets.defs import automation

    assert {"score_cohort_job", "train_models_job"} <= {j.name for j in defs.jobs}
    assert automation.missing_keys(defs.assets) == []
    assert {s.name for s in defs.sensors} >= {"new_cohort_sensor"} and {s.name for s in defs.schedules} == {"nightly_rescore_schedule", "weekly_retrain_schedule"}
