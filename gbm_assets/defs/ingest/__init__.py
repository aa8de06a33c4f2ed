"""Ingest: raw cohorts and their clinical tables."""

from gbm_assets.defs.ingest.assets import clinical_records, raw_cohort
from gbm_assets.defs.ingest.checks import (
    clinical_records_cover_imaged_patients,
    raw_cohort_patient_ids_unique,
    raw_cohort_patients_complete,
)

assets = [raw_cohort, clinical_records]
checks = [raw_cohort_patients_complete, raw_cohort_patient_ids_unique, clinical_records_cover_imaged_patients]
