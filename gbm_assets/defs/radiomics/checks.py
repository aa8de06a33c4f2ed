"""Checks on the radiomics assets, per cohort partition. Named as predicates.

Each puts the threshold it expected and the value it found in its metadata; thresholds are run
configuration (`config.py`).
"""

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.metadata import check_result, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.radiomics.config import NanRateSettings, VolumeAgreementSettings


@dg.asset_check(
    asset="radiomic_features",
    partitions_def=cohorts_partitions,
    description="Few feature values are NaN or infinite.",
)
def radiomic_features_nan_rate_below_threshold(config: NanRateSettings, radiomic_features: pd.DataFrame) -> dg.AssetCheckResult:
    values = pd.to_numeric(radiomic_features["value"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    rate = float(bad.mean()) if len(values) else 0.0
    worst = radiomic_features[bad].groupby(["sequence", "region", "feature_class", "feature"]).size().sort_values(ascending=False)
    return check_result(
        rate < config.max_rate, rate, f"NaN rate < {config.max_rate:g}",
        metadata={
            "expected_max_rate": config.max_rate,
            "actual_rate": rate,
            "values": len(values),
            "nan_values": int(bad.sum()),
            "most_nan_features": table_metadata(worst.head(10).rename("nan_values").to_frame()),
        },
    )


@dg.asset_check(
    asset="tumor_burden",
    partitions_def=cohorts_partitions,
    description="Predicted whole-tumour volumes agree with the ground truth (median relative difference). "
    "A cohort without ground truth is reported as skipped (metadata `skipped`), not as agreeing.",
)
def tumor_burden_predicted_volume_agrees_with_truth(config: VolumeAgreementSettings, tumor_burden: pd.DataFrame) -> dg.AssetCheckResult:
    paired = tumor_burden[
        (tumor_burden["roi_source"] == "predicted")
        & (tumor_burden["region"] == "whole_tumor")
        & (pd.to_numeric(tumor_burden["truth_volume_ml"], errors="coerce") > 0)
    ]
    expected = {"expected_max_median_relative_diff": config.max_relative_diff}
    threshold = f"median relative volume difference < {config.max_relative_diff:g}"
    if paired.empty:  # nothing to compare: not a pass on the merits; said so, as a warning
        return check_result(
            True, "no ground-truth volumes", threshold,
            severity=dg.AssetCheckSeverity.WARN,
            description="skipped: no ground-truth volumes to compare",
            metadata={**expected, "patients_compared": 0, "skipped": "no ground-truth volumes to compare"},
        )
    relative = (paired["volume_diff_ml"].astype(float).abs() / paired["truth_volume_ml"].astype(float)).rename("relative_diff")
    median = float(relative.median())
    table = pd.concat([paired[["patient_id", "volume_ml", "truth_volume_ml", "dice"]], relative], axis=1)
    return check_result(
        median < config.max_relative_diff, median, threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **expected,
            "actual_median_relative_diff": median,
            "patients_compared": len(paired),
            "median_dice": float(paired["dice"].median()),
            "worst": table_metadata(table.sort_values("relative_diff", ascending=False).head(10), index=False, digits=3),
        },
    )
