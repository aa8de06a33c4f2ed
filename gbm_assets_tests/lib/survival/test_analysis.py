"""Kaplan-Meier against a hand-checked example, log-rank, survival versus volume, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.survival.analysis import (
    kaplan_meier_by_group,
    kaplan_meier_png,
    survival_scatter_png,
    survival_vs_volume,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_kaplan_meier_matches_hand_computation():
    # durations [1, 2, 2, 3, 4, 5], events [1, 1, 0, 1, 0, 1] (0 = censored). By hand:
    #   t=1: 6 at risk, 1 death    S = 5/6
    #   t=2: 5 at risk, 1 death (the other t=2 is censored)   S = 5/6 * 4/5 = 2/3
    #   t=3: 3 at risk, 1 death    S = 2/3 * 2/3 = 4/9
    #   t=4: 2 at risk, censored   S = 4/9
    #   t=5: 1 at risk, 1 death    S = 0
    # median: first t with S(t) <= 1/2 -> 3 months.
    curves, medians, p = kaplan_meier_by_group([1, 2, 2, 3, 4, 5], [1, 1, 0, 1, 0, 1])
    assert curves.time_months.tolist() == [0, 1, 2, 3, 4, 5]
    assert curves.survival.to_numpy() == pytest.approx([1, 5 / 6, 2 / 3, 4 / 9, 4 / 9, 0])
    assert curves.at_risk.tolist() == [6, 6, 5, 3, 2, 1]
    assert medians.to_dict("records") == [{"group": "all", "n": 6, "n_events": 4, "median_months": 3.0}]
    assert np.isnan(p)  # one group: no test


def test_no_event_column_means_every_patient_died():
    # all events: S = 5/6, 4/6 (two deaths at t=2 -> 5/6 * 3/5 = 1/2), ... median = 2
    curves, medians, _ = kaplan_meier_by_group([1, 2, 2, 3, 4, 5])
    assert curves.survival.to_numpy() == pytest.approx([1, 5 / 6, 1 / 2, 1 / 3, 1 / 6, 0])
    assert medians.median_months.iloc[0] == 2.0 and medians.n_events.iloc[0] == 6


def test_logrank_small_for_different_groups_and_one_for_identical():
    short = [1, 2, 2, 3, 3, 4, 4, 5]
    long = [20, 22, 25, 28, 30, 33, 35, 40]
    _, medians, p = kaplan_meier_by_group(short + long, None, ["short"] * 8 + ["long"] * 8)
    assert p < 1e-3
    assert medians.set_index("group").median_months.to_dict() == {"long": 28.0, "short": 3.0}
    _, _, p_same = kaplan_meier_by_group(short + short, None, ["a"] * 8 + ["b"] * 8)
    assert p_same == pytest.approx(1.0)


def test_median_not_reached_is_inf_and_bad_rows_are_handled():
    _, medians, _ = kaplan_meier_by_group([5, 10, 12, 15], [1, 0, 0, 0])
    assert np.isinf(medians.median_months.iloc[0])
    with pytest.warns(UserWarning, match="1 patient"):
        _, medians, _ = kaplan_meier_by_group([5, np.nan, 12], [1, 1, 1], ["a", "a", "a"])
    assert medians.n.iloc[0] == 2
    with pytest.raises(ValueError, match="negative"):
        kaplan_meier_by_group([-1, 2], [1, 1])
    with pytest.raises(ValueError, match="0/1"):
        kaplan_meier_by_group([1, 2], [1, 2])
    curves, medians, p = kaplan_meier_by_group([], [], [])
    assert curves.empty and medians.empty and np.isnan(p)


def test_survival_vs_volume_table():
    df = pd.DataFrame({
        "survival_months": [2, 3, 4, 8, 12, 20],
        "total": [90, 80, 70, 40, 30, 10],  # bigger tumour, shorter survival (monotone)
        "enh": [30, 25, 20, 5, 4, 3],
    })
    table = survival_vs_volume(df, total_volume_col="total", enhancing_volume_col="enh").set_index("test")
    assert table.loc["spearman", "statistic"] == pytest.approx(-1.0)
    assert table.loc["pearson", "statistic"] < -0.9
    assert table.loc["mann_whitney", "effect"] == pytest.approx(1.0)  # every short survivor has more enhancing
    assert table.loc["mann_whitney", "n"] == 6
    few = survival_vs_volume(df.iloc[:2], total_volume_col="total", enhancing_volume_col="enh").set_index("test")
    assert np.isnan(few.loc["spearman", "p_value"]) and np.isnan(few.loc["mann_whitney", "statistic"])
    with pytest.raises(KeyError, match="nope"):
        survival_vs_volume(df, total_volume_col="nope", enhancing_volume_col="enh")


def test_survival_plots_are_png(tmp_path):
    curves, medians, p = kaplan_meier_by_group([1, 2, 3, 10, 12, 14], None, list("aaabbb"))
    assert kaplan_meier_png(curves, medians, p, path=tmp_path / "km.png").startswith(PNG)
    assert (tmp_path / "km.png").exists()
    assert kaplan_meier_png(curves.iloc[:0]).startswith(PNG)
    df = pd.DataFrame({"survival_months": [2, 8, 12], "vol": [3.0, 2.0, 1.0]})
    assert survival_scatter_png(df, "vol").startswith(PNG)
