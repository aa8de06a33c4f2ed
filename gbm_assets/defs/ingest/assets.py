"""Raw cohort assets: validated patient index and normalised clinical records, per cohort.

Both read only files inside the cohort folder (symlinks resolved), plus the directories the
operator allows in the run config (`allowed_input_dirs`) or in `$GBM_ALLOWED_INPUT_DIRS`.
`raw_cohort` writes sources that are not NIfTI (NRRD, DICOM series, Kaggle 2D slices) as NIfTI
under `volumes/converted/<cohort>/<patient>/`; its table names those files.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.ingest.clinical import (
    ClinicalTableError,
    clinical_source,
    empty_clinical,
    normalise_clinical,
    read_table,
)
from gbm_assets.lib.ingest.confine import ALLOWED_ENV
from gbm_assets.lib.ingest.layouts import LayoutError
from gbm_assets.lib.ingest.layouts.mapped import read_cohort_yaml
from gbm_assets.lib.ingest.validate import problems_markdown, sequence_counts, validate_cohort
from gbm_assets.lib.store.paths import CohortNameError


class IngestConfig(dg.Config):
    """The operator's allowance for cohort files that resolve outside the cohort folder."""

    allowed_input_dirs: list[str] = Field(
        default_factory=list,
        description="Directories outside the cohort folder that its files (or symlinks) may resolve into; "
        f"added to ${ALLOWED_ENV}. Empty: only the cohort folder.",
    )

    def allowed(self, data_root: DataRootResource) -> list[Path]:
        return [Path(p) for p in self.allowed_input_dirs] + data_root.allowed_inputs()


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="ingest",
    io_manager_key="table_io_manager",
    kinds={"parquet", "nifti"},
    description="One row per patient of the cohort: files (NIfTI; other formats converted), sequences present, "
    "geometry, label scheme, status (ok/excluded) and problems.",
)
def raw_cohort(context: dg.AssetExecutionContext, config: IngestConfig, data_root: DataRootResource) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    try:
        root = data_root.root()
        cohort_dir = root.cohort_dir(cohort)
        table = validate_cohort(cohort, cohort_dir, config.allowed(data_root), root.volume_dir("converted", cohort))
    except (LayoutError, CohortNameError, OSError) as exc:
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
            "label_schemes": dg.MetadataValue.json(sorted(set(table["label_scheme"].dropna().astype(str)))),
            "patients_per_sequence": dg.MetadataValue.json(sequence_counts(table)),
            "patients": len(table),
            "valid_patients": int((table["status"] == "ok").sum()),
            "excluded_patients": len(excluded),
            "empty_masks": int(table["labels_empty"].sum()),
            "subjects": int(table["subject_id"].nunique()),
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
def clinical_records(context: dg.AssetExecutionContext, config: IngestConfig, data_root: DataRootResource) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    cohort_dir = data_root.root().cohort_dir(cohort)
    try:
        path, spec = clinical_source(cohort_dir, read_cohort_yaml(cohort_dir).get("clinical"), config.allowed(data_root))
        if path is None:
            context.log.info(f"cohort {cohort}: no clinical table (clinical.csv or cohort.yaml 'clinical:'); writing none")
            table = empty_clinical()
        else:
            table = normalise_clinical(read_table(path, spec.get("separator")), cohort, str(path), spec)
    except (ClinicalTableError, LayoutError, OSError) as exc:
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
