"""Survival view: Kaplan-Meier medians per true and predicted subtype, survival against tumour volume.

The computation lives in `gbm_assets.lib.survival`; the asset loads, calls and records.
"""

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.config import check_roi_source
from gbm_assets.defs.classify.notes import warnings_logged
from gbm_assets.defs.conditions import EAGER
from gbm_assets.defs.metadata import images_metadata, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.defs.survival.config import SurvivalSettings
from gbm_assets.lib.survival.analysis import survival_vs_volume
from gbm_assets.lib.survival.view import (
    ASSUMED_DEATHS,
    in_sample_note,
    survival_frame,
    survival_medians,
    survival_plots,
)


@dg.asset(
    automation_condition=EAGER,
    partitions_def=cohorts_partitions,
    group_name="survival",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    ins={
        "clinical_records": dg.AssetIn(input_manager_key="table_io_manager"),
        "tumor_burden": dg.AssetIn(input_manager_key="table_io_manager"),
        "subtype_predictions": dg.AssetIn(),
    },
    description="Kaplan-Meier medians per true and predicted subtype with log-rank p; survival against "
    "whole-tumour and enhancing volume in the metadata. Empty when the cohort has no survival times.",
)
def survival_view(
    context: dg.AssetExecutionContext, config: SurvivalSettings, data_root: DataRootResource,
    clinical_records: pd.DataFrame, tumor_burden: pd.DataFrame, subtype_predictions: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    with warnings_logged(context) as warned:
        try:
            roi_source = check_roi_source(config.roi_source)
            frame, notes = survival_frame(clinical_records, tumor_burden, subtype_predictions, roi_source)
        except ValueError as exc:
            raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
        table, km = survival_medians(frame, cohort)
        tests = survival_vs_volume(frame, total_volume_col="total_volume_ml", enhancing_volume_col="enhancing_volume_ml")
    if frame.empty:
        context.log.info(f"cohort {cohort}: no survival times in clinical_records; writing an empty survival_view")
        return dg.Output(table, metadata={"patients_with_survival": 0, "note": "no survival times in this cohort"})
    folder = data_root.root().root / "reports" / "survival_view" / cohort
    pngs = survival_plots(frame, km, notes, cohort, folder)
    return dg.Output(
        table,
        metadata={
            "patients_with_survival": len(frame),
            "events_known": int(frame["event"].notna().sum()),
            "events_unknown": int(frame["event"].isna().sum()),
            "event_handling": ASSUMED_DEATHS if frame["event"].isna().all() else
            "patients with an unknown event are left out of the curves, log-rank tests, n and n_events",
            "predictions_in_training_set": int(frame["prediction_in_training_set"].dropna().astype(bool).sum()),
            "predicted_subtype_curves": in_sample_note(frame) or "out-of-sample (or training membership unknown)",
            "medians": table_metadata(table.drop(columns=["cohort"]), index=False, digits=3),
            "volume_tests": table_metadata(tests, index=False, digits=3),
            "total_volume_roi_source": notes["total_volume_roi_source"] or "absent: no whole_tumor volume in tumor_burden",
            "enhancing_volume": notes["enhancing_roi_source"] or "absent: enhancing volume needs ground-truth masks",
            "plots": images_metadata(pngs),
            "plots_dir": dg.MetadataValue.path(str(folder)),
            "warnings": dg.MetadataValue.json(warned[:50]),
        },
    )

