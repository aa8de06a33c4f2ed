"""Checks on the radiomics assets and on lesion_masks, per cohort partition. Named as predicates.

Each puts the threshold it expected and the value it found in its metadata; thresholds are run
configuration (`config.py`).
"""

import numpy as np
import pandas as pd
import dagster as dg

from gbm_assets.defs.masks.assets import lesion_masks
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.radiomics.assets import tumor_burden
from gbm_assets.defs.radiomics.config import EmptyMaskRateSettings, NanRateSettings, VolumeAgreementSettings


@dg.asset_check(
    asset=lesion_masks,
    partitions_def=cohorts_partitions,
    description="Few segmented patients have an empty predicted mask (an empty mask has no predicted features).",
)
def lesion_masks_empty_rate_below_threshold(config: EmptyMaskRateSettings, lesion_masks: pd.DataFrame) -> dg.AssetCheckResult:
    ok = lesion_masks[lesion_masks["status"] == "ok"]
    empty = ok[ok["empty"].astype(bool)]
    rate = len(empty) / len(ok) if len(ok) else float("nan")
    return dg.AssetCheckResult(
        passed=bool(len(ok) and rate < config.max_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "expected_max_rate": config.max_rate,
            "actual_rate": rate,
            "segmented_patients": len(ok),
            "empty_masks": len(empty),
            "empty_patients": dg.MetadataValue.json(sorted(map(str, empty["patient_id"]))[:100]),
        },
    )


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
    return dg.AssetCheckResult(
        passed=rate < config.max_rate,
        metadata={
            "expected_max_rate": config.max_rate,
            "actual_rate": rate,
            "values": len(values),
            "nan_values": int(bad.sum()),
            "most_nan_features": dg.MetadataValue.md(
                worst.head(10).rename("nan_values").to_frame().to_markdown() if len(worst) else "none"
            ),
        },
    )


@dg.asset_check(
    asset=tumor_burden,
    partitions_def=cohorts_partitions,
    description="Predicted whole-tumour volumes agree with the ground truth (median relative difference), where ground truth exists.",
)
def tumor_burden_predicted_volume_agrees_with_truth(config: VolumeAgreementSettings, tumor_burden: pd.DataFrame) -> dg.AssetCheckResult:
    paired = tumor_burden[
        (tumor_burden["roi_source"] == "predicted")
        & (tumor_burden["region"] == "whole_tumor")
        & (pd.to_numeric(tumor_burden["truth_volume_ml"], errors="coerce") > 0)
    ]
    expected = {"expected_max_median_relative_diff": config.max_relative_diff}
    if paired.empty:
        return dg.AssetCheckResult(
            passed=True,
            metadata={**expected, "patients_compared": 0, "note": "no ground truth to compare with: passes vacuously"},
        )
    relative = (paired["volume_diff_ml"].astype(float).abs() / paired["truth_volume_ml"].astype(float)).rename("relative_diff")
    median = float(relative.median())
    table = pd.concat([paired[["patient_id", "volume_ml", "truth_volume_ml", "dice"]], relative], axis=1)
    return dg.AssetCheckResult(
        passed=median < config.max_relative_diff,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **expected,
            "actual_median_relative_diff": median,
            "patients_compared": len(paired),
            "median_dice": float(paired["dice"].median()),
            "worst": dg.MetadataValue.md(table.sort_values("relative_diff", ascending=False).head(10).round(3).to_markdown(index=False)),
        },
    )
