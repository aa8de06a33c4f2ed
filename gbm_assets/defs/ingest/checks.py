"""Checks on the raw cohort assets, per cohort partition. Named as predicates."""


import pandas as pd
import dagster as dg

from gbm_assets.defs.ingest.assets import clinical_records, raw_cohort
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.lib.validate import problems_markdown


@dg.asset_check(asset=raw_cohort, partitions_def=cohorts_partitions, description="Every patient has all sequences, readable and consistent.")
def raw_cohort_patients_complete(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    excluded = raw_cohort[raw_cohort["status"] != "ok"]
    return dg.AssetCheckResult(
        passed=excluded.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "patients": len(raw_cohort),
            "excluded": len(excluded),
            "problems": dg.MetadataValue.md(problems_markdown(raw_cohort)),
        },
    )


@dg.asset_check(asset=raw_cohort, partitions_def=cohorts_partitions, description="No patient id appears twice in the cohort.")
def raw_cohort_patient_ids_unique(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = sorted(set(raw_cohort.loc[raw_cohort["patient_id"].duplicated(), "patient_id"]))
    return dg.AssetCheckResult(
        passed=not duplicated,
        metadata={"duplicate_patient_ids": dg.MetadataValue.json(duplicated)},
    )


@dg.asset_check(
    asset=clinical_records,
    partitions_def=cohorts_partitions,
    additional_ins={"raw_cohort": dg.AssetIn("raw_cohort")},
    description="Every imaged patient has a clinical row.",
)
def clinical_records_cover_imaged_patients(clinical_records: pd.DataFrame, raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    missing = sorted(set(raw_cohort["patient_id"]) - set(clinical_records["patient_id"]))
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"imaged_patients": len(raw_cohort), "without_clinical_row": dg.MetadataValue.json(missing[:100])},
    )
