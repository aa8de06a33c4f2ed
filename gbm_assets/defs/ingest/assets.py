"""Raw cohort assets: validated patient index and normalised clinical records, per cohort."""


import pandas as pd
import dagster as dg

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.clinical import ClinicalTableError, clinical_source, empty_clinical, normalise_clinical, read_table
from gbm_assets.lib.layouts import LayoutError
from gbm_assets.lib.layouts.mapped import read_cohort_yaml
from gbm_assets.lib.paths import CohortNameError
from gbm_assets.lib.validate import problems_markdown, validate_cohort


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="ingest",
    io_manager_key="table_io_manager",
    kinds={"parquet", "nifti"},
    description="One row per patient of the cohort: files, geometry, label scheme, status (ok/excluded) and problems.",
)
def raw_cohort(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    try:
        cohort_dir = data_root.root().cohort_dir(cohort)
        table = validate_cohort(cohort, cohort_dir)
    except (LayoutError, CohortNameError) as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
    if table.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no patients found in {cohort_dir}")
    excluded = table[table["status"] != "ok"]
    for row in excluded.itertuples():
        context.log.warning(f"cohort {cohort}, patient {row.patient_id}: excluded: {row.problems}")
    return dg.Output(
        table,
        metadata={
            "cohort_dir": dg.MetadataValue.path(str(cohort_dir)),
            "layout": str(table["layout"].iloc[0]),
            "patients": len(table),
            "valid_patients": int((table["status"] == "ok").sum()),
            "excluded_patients": len(excluded),
            "empty_masks": int(table["labels_empty"].sum()),
            "problems": dg.MetadataValue.md(problems_markdown(table)),
        },
    )


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="ingest",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    description="The cohort's clinical table, normalised: subtype, survival in months, event, IDH status, age.",
)
def clinical_records(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    cohort_dir = data_root.root().cohort_dir(cohort)
    try:
        path, spec = clinical_source(cohort_dir, read_cohort_yaml(cohort_dir).get("clinical"))
        if path is None:
            context.log.info(f"cohort {cohort}: no clinical table (clinical.csv or cohort.yaml 'clinical:'); writing none")
            table = empty_clinical()
        else:
            table = normalise_clinical(read_table(path, spec.get("separator")), cohort, str(path), spec)
    except (ClinicalTableError, LayoutError) as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
    counts = table["subtype"].value_counts().to_dict()
    return dg.Output(
        table,
        metadata={
            "source": str(path) if path else "none",
            "patients": len(table),
            "labelled_patients": int(table["subtype"].notna().sum()),
            "with_survival": int(table["survival_months"].notna().sum()),
            "subtype_counts": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
        },
    )
