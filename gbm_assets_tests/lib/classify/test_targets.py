"""Targets: labels per target with exclusions counted by reason, and the skip rule (never a crash)."""

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.classify.tables import target_predictions_table, training_matrix
from gbm_assets.lib.classify.targets import (
    IDH,
    SHORT_SURVIVAL,
    SUBTYPE,
    skip_reason,
    target_labels,
)


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "cohort": "c", "patient_id": [f"P{i}" for i in range(7)],
        "subtype": ["Classical", None, "Neural", "Proneural", "Classical", "Neural", "Mesenchymal"],
        "idh_status": ["mutant", "wildtype", None, "wildtype", "mutant", None, "wildtype"],
        "survival_months": [3.0, 5.0, 4.0, 12.0, None, 5.1, 2.0],
        "event": [1, np.nan, 0, 0, 1, 1, np.nan],
        "t1__whole_tumor__firstorder_mean": np.arange(7.0),
    })  # fmt: skip


def test_idh_labels_exclude_unknown_status():
    labels, excluded = target_labels(table(), IDH)
    assert labels.tolist()[:2] == ["mutant", "wildtype"] and labels.isna().sum() == 2
    assert excluded == {"IDH status unknown": 2}


def test_short_survival_is_the_notebooks_split_and_censored_short_times_are_excluded():
    labels, excluded = target_labels(table(), SHORT_SURVIVAL)
    # 3 (death) short, 5.0 (event unknown: a death) short, 4 censored: excluded, 12 long, None excluded,
    # 5.1 long (just over the split), 2 with unknown event short
    assert [x if isinstance(x, str) else None for x in labels] == ["short", "short", None, "long", None, "long", "short"]
    assert excluded == {"survival unknown": 1, "censored at or before 5 months": 1, "assumed_deaths": 2}


def test_subtype_labels_are_the_subtype_column():
    labels, excluded = target_labels(table(), SUBTYPE)
    assert labels.notna().sum() == 6 and excluded == {"subtype unknown": 1}


@pytest.mark.parametrize(("labels", "needle"), [
    (["a"] * 12, "one class only"),
    ([], "one class only"),
    (["a"] * 3 + ["b"] * 3, "cross-validation needs at least 8"),
    (["a"] * 11 + ["b"], "too few patients per class"),
])  # fmt: skip
def test_untrainable_targets_say_why(labels, needle):
    assert needle in skip_reason(labels)


def test_trainable_target_has_no_skip_reason():
    assert skip_reason(["a"] * 6 + ["b"] * 4 + [None]) is None


def test_training_matrix_takes_a_label_series_and_keeps_cohort_in_the_index():
    t = table()
    labels, _ = target_labels(t, IDH)
    X, y = training_matrix(t, labels)
    assert list(X.index[:2]) == ["c/P0", "c/P1"] and list(y[:2]) == ["mutant", "wildtype"]


def test_target_predictions_table_layout():
    out = target_predictions_table(IDH, "c", ["P0", "P1"], np.array([[0.8], [0.3]]), ["mutant"], "4")
    assert list(out.columns) == ["cohort", "patient_id", "predicted_idh", "p_mutant", "p_wildtype", "model_version"]
    assert out["p_wildtype"].tolist() == [0.0, 0.0] and out["predicted_idh"].tolist() == ["mutant", "mutant"]
    empty = target_predictions_table(SHORT_SURVIVAL, "c", [], np.zeros((0, 2)), ["short", "long"], "")
    assert empty.empty and "p_short" in empty.columns
    with pytest.raises(ValueError, match="not idh labels"):
        target_predictions_table(IDH, "c", ["P0"], np.array([[1.0]]), ["Classical"], "1")
