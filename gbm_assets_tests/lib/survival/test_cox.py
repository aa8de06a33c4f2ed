import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index

from gbm_assets.lib.survival.cox import cross_validated_cox, harrell_c, survival_table


@pytest.mark.parametrize("ties", [False, True])
def test_harrell_c_equals_lifelines(ties):
    rng = np.random.default_rng(3)
    t, r, e = rng.exponential(10, 80), rng.normal(size=80), rng.random(80) < 0.7
    if ties:
        t, r = np.round(t), np.round(r)
    assert harrell_c(t, r, e) == pytest.approx(concordance_index(t, -r, e))


def _table(n=40, seed=0, events=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    t = np.exp(1 - 0.9 * x[:, 0] + 0.3 * rng.normal(size=n)) * 10
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(
        survival_months=t, event=(rng.random(n) < 0.8).astype(float) if events else 0.0,
        subject=[f"c/s{i}" for i in range(n)], age=rng.normal(60, 10, n))


def test_cross_validated_cox_scores_out_of_fold():
    result = cross_validated_cox(_table(), [f"f{i}" for i in range(6)] + ["age"], "imaging", top_k=3)
    assert result.status == "ok"
    assert result.metrics["harrell_c"] > 0.65
    assert not np.isnan(result.risk).any()


def test_no_events_or_too_few_patients_skip_with_a_reason():
    skipped = cross_validated_cox(_table(events=False), ["f0"], "imaging")
    assert skipped.status == "skipped" and "no events" in skipped.reason
    few = cross_validated_cox(_table(n=5), ["f0"], "imaging")
    assert few.status == "skipped" and "need at least 10" in few.reason
    empty = cross_validated_cox(_table().iloc[:0], [], "imaging")
    assert empty.status == "skipped"


def test_survival_table_keeps_each_subjects_first_scan():
    wide = pd.DataFrame({"cohort": "c", "patient_id": ["S__week-000", "S__week-010", "P"], "roi_source": "ground_truth", "f": [1.0, 2.0, 3.0]})
    clin = pd.DataFrame({"cohort": "c", "patient_id": ["S__week-000", "S__week-010", "P"], "survival_months": [10.0, 7.7, 5.0],
                         "event": [True, True, None], "idh_status": ["mutant", "mutant", None], "age": [50, 50, 60]})
    table = survival_table(wide, clin, "ground_truth")
    assert list(table["patient_id"]) == ["S__week-000"]  # P: event unknown while others have one
    row = table.set_index("patient_id").loc["S__week-000"]
    assert row["idh_mutant"] == 1.0 and row["f"] == 1.0
    all_unknown = survival_table(wide, clin.assign(event=None), "ground_truth")
    assert all_unknown["event"].tolist() == [1.0, 1.0]  # no vital status at all: every time is a death
