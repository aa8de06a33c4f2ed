"""The code location loads and exposes the platform's assets, checks and jobs by name."""

from gbm_assets.definitions import defs


def test_asset_keys_are_pinned():
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"raw_cohort", "clinical_records"} <= keys


def test_checks_and_jobs_are_wired():
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"raw_cohort_patients_complete", "raw_cohort_patient_ids_unique", "clinical_records_cover_imaged_patients"} <= checks
    assert defs.resolve_job_def("ingest_job") is not None
