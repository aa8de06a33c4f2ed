"""The code location loads and exposes the platform's assets, checks and jobs by name."""

from gbm_assets.definitions import defs

ASSETS = {
    "raw_cohort", "clinical_records",
    "preprocessed_volumes", "training_slices", "unet_model", "segmentation_metrics", "lesion_masks",
    "radiomic_features", "radiomic_features_wide", "radiomics_exclusions", "radiomics_provenance", "tumor_burden",
    "subtype_training_table", "subtype_classifier", "subtype_predictions", "survival_view",
}  # fmt: skip
CHECKS = {
    "raw_cohort_patients_complete", "raw_cohort_patient_ids_unique", "clinical_records_cover_imaged_patients",
    "training_slices_patients_in_one_split",
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
