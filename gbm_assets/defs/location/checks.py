"""Checks on `tumor_location`, per cohort partition. Named as predicates."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.location.config import RegistrationFloorSettings
from gbm_assets.defs.metadata import check_result, table_metadata
from gbm_assets.defs.partitions import cohorts_partitions


@dg.asset_check(
    asset="tumor_location",
    partitions_def=cohorts_partitions,
    description="Every patient's registration to MNI152 is plausible: brain-mask Dice at or above the floor "
    "(a patient whose registration raised, with no Dice, fails too).",
)
def tumor_location_registration_above_floor(config: RegistrationFloorSettings, tumor_location: pd.DataFrame) -> dg.AssetCheckResult:
    expected = {"expected_min_brain_dice": config.dice_floor}
    threshold = f"brain Dice >= {config.dice_floor:g} for every patient"
    if tumor_location.empty:
        return check_result(
            True, "no patient localised", threshold, severity=dg.AssetCheckSeverity.WARN, description="skipped: no patient localised",
            metadata={**expected, "patients": 0, "skipped": "no patient localised"},
        )  # fmt: skip
    per_patient = tumor_location.groupby("patient_id", sort=True).agg(
        brain_dice=("brain_dice", "first"), metric=("metric", "first"), problem=("problem", "first")
    )
    dice = pd.to_numeric(per_patient["brain_dice"], errors="coerce")
    below = per_patient[~(dice >= config.dice_floor)].reset_index()
    lowest = float(dice.min()) if dice.notna().any() else float("nan")
    return check_result(
        below.empty, lowest, threshold,
        description=None if below.empty else f"{len(below)} patient(s) below the floor: {', '.join(below['patient_id'])}",
        metadata={
            **expected,
            "actual_min_brain_dice": lowest,
            "patients": len(per_patient),
            "patients_below_floor": dg.MetadataValue.json(below["patient_id"].tolist()),
            "below_floor": table_metadata(below, index=False, digits=3),
        },
    )
