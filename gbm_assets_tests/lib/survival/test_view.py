"""The survival view's pure parts: per-patient inputs, Kaplan-Meier medians per grouping, charts."""

import numpy as np
import pandas as pd

from gbm_assets.lib.survival.view import (
    SURVIVAL_COLUMNS,
    survival_frame,
    survival_medians,
    survival_plots,
)


def _inputs():
    clinical = pd.DataFrame({"cohort": "c", "patient_id": ["a", "b", "c", "d"], "subtype": ["Classical", "Classical", "Neural", None],
                             "survival_months": [2.0, 4.0, 6.0, None], "event": [1, 1, 0, None]})  # fmt: skip
    burden = pd.DataFrame({"patient_id": ["a", "b", "c"], "roi_source": "ground_truth", "region": "whole_tumor",
                           "volume_ml": [10.0, 20.0, 30.0]})  # fmt: skip
    preds = pd.DataFrame({"patient_id": ["a", "c"], "predicted_subtype": ["Neural", "Neural"]})
    return clinical, burden, preds


def test_frame_falls_back_to_the_other_roi_source(tmp_path):
    frame, notes = survival_frame(*_inputs(), roi_source="predicted")
    assert list(frame["patient_id"]) == ["a", "b", "c"] and notes["total_volume_roi_source"] == "ground_truth"
    assert notes["enhancing_roi_source"] is None and frame["enhancing_volume_ml"].isna().all()
    assert frame["predicted_subtype"].iloc[0] == "Neural" and pd.isna(frame["predicted_subtype"].iloc[1])
    table, km = survival_medians(frame, "c")
    assert list(table.columns) == list(SURVIVAL_COLUMNS) and set(table["grouping"]) == {"all", "true_subtype", "predicted_subtype"}
    classical = table.query("grouping == 'true_subtype' and group == 'Classical'").iloc[0]
    assert classical["median_months"] == 2.0 and classical["median_reached"]
    pngs = survival_plots(frame, km, notes, "c", tmp_path)
    assert len(pngs) == 3 and len(list(tmp_path.glob("*.png"))) == 3 and not list(tmp_path.glob(".*tmp"))


def test_no_survival_times_give_empty_tables():
    clinical, burden, preds = _inputs()
    frame, _ = survival_frame(clinical.assign(survival_months=np.nan), burden, preds.iloc[:0])
    table, km = survival_medians(frame, "c")
    assert frame.empty and table.empty and km == {}
