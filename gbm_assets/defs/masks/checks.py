"""Checks on lesion_masks, per cohort partition. Named as predicates."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.masks.config import EmptyMaskRateSettings
from gbm_assets.defs.metadata import check_result
from gbm_assets.defs.partitions import cohorts_partitions


@dg.asset_check(
    asset="lesion_masks",
    partitions_def=cohorts_partitions,
    description="Few segmented patients have an empty predicted mask (an empty mask has no predicted features).",
)
def lesion_masks_empty_rate_below_threshold(config: EmptyMaskRateSettings, lesion_masks: pd.DataFrame) -> dg.AssetCheckResult:
    ok = lesion_masks[lesion_masks["status"] == "ok"]
    empty = ok[ok["empty"].astype(bool)]
    rate = len(empty) / len(ok) if len(ok) else float("nan")
    return check_result(
        bool(len(ok) and rate < config.max_rate), rate, f"empty-mask rate < {config.max_rate:g}",
        severity=dg.AssetCheckSeverity.WARN,
        description=None if empty.empty else f"empty: {', '.join(sorted(map(str, empty['patient_id']))[:20])}",
        metadata={
            "expected_max_rate": config.max_rate,
            "actual_rate": rate,
            "segmented_patients": len(ok),
            "empty_masks": len(empty),
            "empty_patients": dg.MetadataValue.json(sorted(map(str, empty["patient_id"]))[:100]),
        },
    )

