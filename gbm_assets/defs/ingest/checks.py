"""Checks on the raw cohort assets, per cohort partition. Named as predicates."""


import dagster as dg
import pandas as pd

from gbm_assets.defs.metadata import check_result
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.lib.ingest.validate import problems_markdown


@dg.asset_check(asset="raw_cohort", partitions_def=cohorts_partitions, description="Every patient passed validation: at least one sequence (and every expected one), readable and consistent.")
def raw_cohort_patients_complete(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    excluded = raw_cohort[raw_cohort["status"] != "ok"]
    return check_result(
        excluded.empty, len(excluded), "0 excluded patients",
        severity=dg.AssetCheckSeverity.WARN,
        description=None if excluded.empty else f"excluded: {', '.join(map(str, excluded['patient_id'][:20]))}",
        metadata={
            "patients": len(raw_cohort),
            "excluded": len(excluded),
            "problems": dg.MetadataValue.md(problems_markdown(raw_cohort)),
        },
    )  # fmt: skip


@dg.asset_check(asset="raw_cohort", partitions_def=cohorts_partitions, description="No patient id appears twice in the cohort.")
def raw_cohort_patient_ids_unique(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    duplicated = sorted(set(raw_cohort.loc[raw_cohort["patient_id"].duplicated(), "patient_id"]))
    return check_result(
        not duplicated, len(duplicated), "0 duplicated patient ids",
        description=", ".join(map(str, duplicated[:20])) or None,
        metadata={"duplicate_patient_ids": dg.MetadataValue.json(duplicated)},
    )  # fmt: skip


@dg.asset_check(
    asset="raw_cohort",
    partitions_def=cohorts_partitions,
    description="No two patients carry identical images (the same image content hash under two ids). Time points "
    "of one subject (a longitudinal cohort, or ids declared under `subject_ids`) share a subject, not images.",
)
def raw_cohort_images_unique(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    known = raw_cohort[raw_cohort["image_sha256"].notna() & (raw_cohort["image_sha256"].astype(str) != "")]
    shared = known[known["image_sha256"].duplicated(keep=False)]
    groups = {h: sorted(g["patient_id"]) for h, g in shared.groupby("image_sha256")}
    return check_result(
        not groups, len(groups), "0 images shared by two patients",
        metadata={
            "patients_with_images": len(known),
            "subjects": int(raw_cohort["subject_id"].nunique()),
            "patients_with_identical_images": dg.MetadataValue.json({str(h)[:16]: p for h, p in list(groups.items())[:100]}),
        },
        description=None if not groups else "; ".join(f"{', '.join(p)} have identical images ({str(h)[:16]})" for h, p in list(groups.items())[:10]),
    )


@dg.asset_check(
    asset="clinical_records",
    partitions_def=cohorts_partitions,
    additional_ins={"raw_cohort": dg.AssetIn("raw_cohort")},
    description="Every imaged patient has a clinical row.",
)
def clinical_records_cover_imaged_patients(clinical_records: pd.DataFrame, raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    missing = sorted(set(raw_cohort["patient_id"]) - set(clinical_records["patient_id"]))
    return check_result(
        not missing, len(missing), "0 imaged patients without a clinical row",
        severity=dg.AssetCheckSeverity.WARN,
        description=", ".join(map(str, missing[:20])) or None,
        metadata={"imaged_patients": len(raw_cohort), "without_clinical_row": dg.MetadataValue.json(missing[:100])},
    )
