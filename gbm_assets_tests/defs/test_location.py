"""`tumor_location` and its check through Dagster, on a tiny synthetic cohort in a temp data root.

`lesion_masks` is a hand-written table (every row excluded, or one pointing at a missing file), so
only the cohort's ground truth is localised and no U-Net is trained.
"""

from pathlib import Path

import pandas as pd
import pytest

from gbm_assets.defs.location.checks import tumor_location_registration_above_floor
from gbm_assets.defs.location.config import RegistrationFloorSettings
from gbm_assets.lib.location.patient import LOCATION_COLUMNS
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import (
    add_cohort,
    check_evaluation,
    failure_message,
    materialize,
    metadata,
)

COHORT = "tiny"
SMALL = SynthOptions(shape=(64, 64, 32), spacing=(3.0, 3.0, 5.0))


def _cohort(root: Path, instance, masks: list[dict]) -> None:
    write_cohort(DataRoot(root).cohorts_dir, COHORT, 2, seed=3, options=SMALL)
    add_cohort(instance, COHORT)
    materialize(root, ["raw_cohort"], COHORT, instance=instance)
    base = {"cohort": COHORT, "problems": "", "roi_scheme": "canonical"}
    write_parquet_atomic(pd.DataFrame([base | m for m in masks]), DataRoot(root).table_file("lesion_masks", COHORT))


def _excluded(patients: list[str]) -> list[dict]:
    return [{"patient_id": p, "status": "excluded", "mask_path": None} for p in patients]


def _location(root: Path) -> pd.DataFrame:
    return pd.read_parquet(DataRoot(root).table_file("tumor_location", COHORT))


@pytest.mark.slow
def test_tumor_location_localises_ground_truth_of_a_synthetic_cohort(data_root, instance):
    patients = [f"{COHORT}-000", f"{COHORT}-001"]
    _cohort(data_root, instance, _excluded(patients))
    result = materialize(data_root, ["tumor_location"], COHORT, instance=instance)
    table = _location(data_root)
    assert list(table.columns) == LOCATION_COLUMNS
    assert set(table["patient_id"]) == set(patients) and set(table["roi_source"]) == {"ground_truth"}
    assert set(table["status"]) == {"ok"} and set(table["region"]) == {"whole_tumor", "tumor_core", "enhancing"}
    assert (table["brain_dice"] >= 0.7).all() and table["reference_sequence"].eq("t1").all()
    pct = table.groupby(["patient_id", "region", "level"])["pct_of_region"].sum()
    assert ((pct - 100).abs() < 1e-6).all()
    assert table["dominant_lobe"].notna().all() and table["hemisphere"].isin(["left", "right", "midline"]).all()
    meta = metadata(result, "tumor_location")
    pictures = [k for k in meta if k.startswith("location_")]
    assert 1 <= len(pictures) <= 3 and meta["failed_patients"] == []
    assert check_evaluation(result, "tumor_location_registration_above_floor").passed


@pytest.mark.slow
def test_implausible_registrations_are_failed_rows_and_the_floor_check_fails(data_root, instance):
    patients = [f"{COHORT}-000", f"{COHORT}-001"]
    _cohort(data_root, instance, _excluded(patients))
    floor = {"config": {"dice_floor": 0.999}}
    result = materialize(data_root, ["tumor_location"], COHORT, instance=instance, raise_on_error=False,
                         run_config={"tumor_location": floor, "tumor_location_tumor_location_registration_above_floor": floor})  # fmt: skip
    assert result.success, failure_message(result)
    table = _location(data_root)
    assert len(table) == 2 and set(table["status"]) == {"failed"} and table["dominant_lobe"].isna().all()
    assert table["problem"].str.contains("floor 0.999").all() and (table["brain_dice"] < 0.999).all()
    assert table["metric"].notna().all()
    assert sorted(metadata(result, "tumor_location")["failed_patients"]) == patients
    evaluation = check_evaluation(result, "tumor_location_registration_above_floor")
    assert not evaluation.passed
    assert sorted(evaluation.metadata["patients_below_floor"].value) == patients


def test_registration_floor_check_passes_fails_and_skips_on_tables():
    table = pd.DataFrame({"patient_id": ["a", "a", "b", "c"], "brain_dice": [0.9, 0.9, 0.65, None],
                          "metric": [-0.2, -0.2, -0.1, None], "problem": [None, None, "below", "raised"]})  # fmt: skip
    result = tumor_location_registration_above_floor(RegistrationFloorSettings(dice_floor=0.7), table)
    assert not result.passed and result.metadata["patients_below_floor"].value == ["b", "c"]
    assert "b, c" in result.description
    ok = tumor_location_registration_above_floor(RegistrationFloorSettings(dice_floor=0.6), table[table["patient_id"] != "c"])
    assert ok.passed and ok.metadata["actual_min_brain_dice"].value == 0.65
    empty = tumor_location_registration_above_floor(RegistrationFloorSettings(), pd.DataFrame(columns=LOCATION_COLUMNS))
    assert empty.passed and empty.metadata["patients"].value == 0
