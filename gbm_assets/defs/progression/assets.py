"""`tumor_progression`: per subject, time point and region of a longitudinal cohort, the volume, its
change from baseline and nadir, and a volumetric response category (see
`gbm_assets.lib.progression.response` for the thresholds and their source).

A cohort without longitudinal patient ids (`<subject>__week-<n>`) gets an empty table and a note.
"""

import dagster as dg
import pandas as pd

from gbm_assets.defs.conditions import EAGER
from gbm_assets.defs.metadata import image_metadata, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.progression.figure import subject_plot
from gbm_assets.lib.progression.response import (
    CR_ML,
    PARTIAL_RESPONSE_PCT,
    PROGRESSION_PCT,
    progression_table,
    response_counts,
)


class ProgressionSettings(dg.Config):
    min_increase_ml: float = 0.0
    """Progression also needs this many mL above the nadir (guards against noise in tiny volumes)."""
    plotted_subjects: int = 4
    """How many subjects' volume-over-time pictures go into the metadata."""


@dg.asset(
    automation_condition=EAGER,
    partitions_def=cohorts_partitions,
    group_name="progression",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    ins={"tumor_burden": dg.AssetIn(input_manager_key="table_io_manager")},
    description="Per subject, time point, ROI source and region: volume (mL), change from baseline and from nadir "
    f"(mL, %), volumetric response (PD >= +{PROGRESSION_PCT:.0f} % from nadir, PR <= {PARTIAL_RESPONSE_PCT:.0f} % "
    f"from baseline, CR <= {CR_ML} mL, SD otherwise). Empty for a cohort without time points.",
)
def tumor_progression(
    context: dg.AssetExecutionContext, config: ProgressionSettings, data_root: DataRootResource, tumor_burden: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    table, notes = progression_table(tumor_burden, min_increase_ml=config.min_increase_ml)
    for note in notes:
        context.log.info(f"cohort {cohort}: {note}")
    if table.empty:
        return dg.Output(table, metadata={"rows": 0, "subjects": 0,
                                          "note": "no longitudinal patient ids (<subject>__week-<n>) in tumor_burden"})
    folder = data_root.root().root / "reports" / "tumor_progression" / cohort
    source = "ground_truth" if (table["roi_source"] == "ground_truth").any() else str(table["roi_source"].iloc[0])
    shown = table[table["roi_source"] == source]
    plots = {}
    for subject in sorted(shown["subject"].unique())[: max(config.plotted_subjects, 0)]:
        png = subject_plot(shown[shown["subject"] == subject], subject, source, folder / f"{subject}.png")
        plots[f"plot_{subject}"] = image_metadata(png, f"{subject} volume over time")
    whole = table[(table["region"] == "whole_tumor") & (table["response"] != "baseline")]
    last = whole.sort_values("week").groupby(["roi_source", "subject"]).tail(1)
    return dg.Output(
        table,
        metadata={
            "rows": len(table),
            "subjects": int(table["subject"].nunique()),
            "timepoints": int(table["patient_id"].nunique()),
            "response_counts": table_metadata(response_counts(table)),
            "last_whole_tumor_response": table_metadata(
                last[["roi_source", "subject", "timepoint", "volume_ml", "change_from_baseline_pct", "change_from_nadir_pct", "response"]],
                index=False, digits=1),
            "notes": dg.MetadataValue.json(notes),
            "plots_dir": dg.MetadataValue.path(str(folder)),
            **plots,
        },
    )
