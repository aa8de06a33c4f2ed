"""Checks for longitudinal cohorts: a subject's time points look like one patient's scans."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.metadata import check_result, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.lib.progression.response import timepoint_problems


@dg.asset_check(
    asset="raw_cohort",
    partitions_def=cohorts_partitions,
    description="Longitudinal subjects: no two time points with identical images, and every time point of a subject on "
    "the same grid (shape, spacing, orientation); a mismatch may be another patient's images. Single time points are noted.",
)
def raw_cohort_timepoints_consistent(raw_cohort: pd.DataFrame) -> dg.AssetCheckResult:
    found = timepoint_problems(raw_cohort)
    bad = found[found["kind"] != "single_timepoint"]
    return check_result(
        bad.empty, len(bad), "0 inconsistent time points",
        severity=dg.AssetCheckSeverity.WARN,
        description=None if bad.empty else "; ".join(bad["problem"].head(10)),
        metadata={
            "problems": table_metadata(bad[["subject", "kind", "problem"]].head(50), index=False),
            "single_timepoint_subjects": dg.MetadataValue.json(sorted(found.loc[found["kind"] == "single_timepoint", "subject"])[:100]),
        },
    )
