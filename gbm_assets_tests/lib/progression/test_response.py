import math

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.progression.response import (
    progression_table,
    response_category,
    series_response,
    timepoint_problems,
)


@pytest.mark.parametrize(
    "volumes, expected",
    [
        ([10, 10.5, 9.8], ["baseline", "stable_disease", "stable_disease"]),
        ([10, 3.4, 3.0], ["baseline", "partial_response", "partial_response"]),
        ([10, 0.0], ["baseline", "complete_response"]),
        ([10, 14.1], ["baseline", "progressive_disease"]),
        ([10, 13.9], ["baseline", "stable_disease"]),
        # progression is measured from the nadir, not the baseline: 3 -> 4.3 is +43 %
        ([10, 3.0, 4.3], ["baseline", "partial_response", "progressive_disease"]),
        # reappearance after a complete response
        ([10, 0.0, 1.0], ["baseline", "complete_response", "progressive_disease"]),
    ],
)
def test_categories_on_constructed_series(volumes, expected):
    assert [r["response"] for r in series_response(volumes)] == expected


def test_changes_from_baseline_and_nadir():
    rows = series_response([10.0, 4.0, 6.0])
    assert rows[2]["nadir_ml"] == 4.0 and rows[2]["change_from_nadir_ml"] == 2.0
    assert rows[2]["change_from_nadir_pct"] == pytest.approx(50.0)
    assert rows[2]["change_from_baseline_pct"] == pytest.approx(-40.0)
    assert math.isnan(series_response([0.0, 0.0])[1]["change_from_baseline_pct"])
    assert series_response([]) == []


def test_min_increase_guards_tiny_volumes():
    assert response_category(0.3, 1.0, 0.2) == "progressive_disease"
    assert response_category(0.3, 1.0, 0.2, min_increase_ml=0.5) == "partial_response"
    assert response_category(0.3, 0.4, 0.2, min_increase_ml=0.5) == "stable_disease"


def _burden(rows):
    return pd.DataFrame(rows, columns=["cohort", "patient_id", "roi_source", "region", "volume_ml"])


def test_progression_table_orders_by_week_and_maps_subjects():
    burden = _burden([
        ("c", "P1__week-044", "ground_truth", "whole_tumor", 20.0),
        ("c", "P1__week-000", "ground_truth", "whole_tumor", 10.0),
        ("c", "P1__week-008", "ground_truth", "whole_tumor", 10.0),
        ("c", "P1__week-008", "ground_truth", "enhancing", 1.0),
        ("c", "BRATS_001", "ground_truth", "whole_tumor", 5.0),
    ])  # fmt: skip
    table, notes = progression_table(burden)
    whole = table[table["region"] == "whole_tumor"]
    assert list(whole["week"]) == [0, 8, 44]
    assert list(whole["response"]) == ["baseline", "stable_disease", "progressive_disease"]
    enh = table[table["region"] == "enhancing"]
    assert list(enh["volume_ml"]) == [0.0, 1.0, 0.0]  # absent at a scan = 0 mL
    assert set(table["subject"]) == {"P1"}
    assert notes and "BRATS_001" in notes[0]
    empty, _ = progression_table(burden.iloc[:0])
    assert empty.empty and "response" in empty.columns


def _raw(rows):
    cols = ["patient_id", "status", "image_sha256", "shape_x", "shape_y", "shape_z"]
    return pd.DataFrame(rows, columns=cols)


def test_timepoint_problems():
    raw = _raw([
        ("A__week-000", "ok", "h1", 10, 10, 10),
        ("A__week-010", "ok", "h1", 10, 10, 10),
        ("B__week-000", "ok", "h2", 10, 10, 10),
        ("B__week-005", "ok", "h3", 12, 10, 10),
        ("C__week-000", "ok", "h4", 10, 10, 10),
        ("D__week-000", "ok", "h5", 10, 10, 10),
        ("D__week-004", "ok", "h6", 10, 10, 10),
        ("plain", "ok", "h7", 10, 10, 10),
    ])  # fmt: skip
    found = timepoint_problems(raw).set_index("subject")["kind"].to_dict()
    assert found == {"A": "identical_images", "B": "geometry_mismatch", "C": "single_timepoint"}
    assert timepoint_problems(raw.iloc[:0]).empty
    assert np.all(timepoint_problems(raw)["problem"].str.contains("subject"))
