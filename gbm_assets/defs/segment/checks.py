"""Checks on the U-Net assets, per model input. Named as predicates; expected and actual values in metadata.

The checks on unet_model look at the version unet_model produced in the same run (see `versions.py`).
"""

import tempfile

import dagster as dg
import pandas as pd

from gbm_assets.defs.metadata import check_result
from gbm_assets.defs.partitions import model_inputs_partitions
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.defs.segment.versions import CHAMPION_METRIC, produced_version
from gbm_assets.lib.segment.checkpoint import weights_finite
from gbm_assets.lib.segment.evaluate import WHOLE_TUMOR, with_region
from gbm_assets.lib.store.tracking import champion_metric, should_promote

TEST_DICE_FLOOR = 0.5
"""A model whose mean test 3D Dice is below this gets a warning (the demo's models reach ~0.8+)."""


@dg.asset_check(asset="unet_model", partitions_def=model_inputs_partitions, blocking=True, description="Every weight of the new checkpoint is finite.")
def unet_model_weights_finite(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource) -> dg.AssetCheckResult:
    version = produced_version(context, mlflow)
    with tempfile.TemporaryDirectory() as tmp:
        finite, bad = weights_finite(version.checkpoint(tmp))
    return check_result(
        finite, len(bad), "0 tensors with NaN or infinite weights",
        description=", ".join(bad[:10]) or None,
        metadata={"model_version": version.version, "mlflow_run_id": version.run_id, "tensors_not_finite": dg.MetadataValue.json(bad[:50])},
    )


@dg.asset_check(
    asset="unet_model",
    partitions_def=model_inputs_partitions,
    blocking=True,
    description="The new version's validation Dice beats the current champion's; otherwise unet_champion does not run.",
)
def unet_model_beats_champion(context: dg.AssetCheckExecutionContext, mlflow: MlflowResource) -> dg.AssetCheckResult:
    version = produced_version(context, mlflow)
    candidate = version.metric(CHAMPION_METRIC)
    champion, value = champion_metric(version.model_name, CHAMPION_METRIC, version.tracking_uri)
    passed = candidate is not None and (champion == version.version or should_promote(candidate, value))
    return check_result(
        bool(passed), float("nan") if candidate is None else float(candidate),
        f"validation Dice above champion v{champion} ({'none' if value is None else f'{value:.4f}'})",
        metadata={
            "candidate_version": version.version,
            "candidate_val_dice": float("nan") if candidate is None else float(candidate),
            "champion_version": str(champion),
            "champion_val_dice": float("nan") if value is None else float(value),
        },
    )


@dg.asset_check(asset="segmentation_metrics", partitions_def=model_inputs_partitions, description=f"Mean whole-tumour test 3D Dice is at least {TEST_DICE_FLOOR}.")
def segmentation_metrics_test_dice_above_floor(segmentation_metrics: pd.DataFrame) -> dg.AssetCheckResult:
    rows = with_region(segmentation_metrics)
    test = rows[(rows["split"] == "test") & (rows["metric"] == "dice_3d") & (rows["region"] == WHOLE_TUMOR)]
    value = float(test["value"].iloc[0]) if len(test) else float("nan")
    return check_result(
        bool(value >= TEST_DICE_FLOOR), value, f"mean test 3D Dice >= {TEST_DICE_FLOOR:g}",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"test_dice_3d": value, "floor": TEST_DICE_FLOOR},
    )
