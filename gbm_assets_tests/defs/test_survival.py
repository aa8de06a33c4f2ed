"""The survival view through Dagster: Kaplan-Meier medians per true and predicted subtype, survival
against tumour volume. Upstream tables are Parquet files written into a temp data root."""

import dagster as dg
import pandas as pd
import pytest
from lifelines.statistics import logrank_test

from gbm_assets.lib.classify.tables import proba_column
from gbm_assets.lib.contract import SUBTYPES
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.store.warehouse import query
from gbm_assets_tests.conftest import add_cohort, materialize, metadata


def run(root, cohort: str):
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, cohort)
    return materialize(root, ["survival_view"], cohort, instance=instance)


def write_table(root, table: str, cohort: str, rows) -> None:
    write_parquet_atomic(pd.DataFrame(rows), DataRoot(root).table_file(table, cohort))


def clinical(cohort: str, patients, subtypes, months=None, events=None) -> list[dict]:
    n = len(patients)
    months = months if months is not None else [None] * n
    events = events if events is not None else [None] * n
    return [{"cohort": cohort, "patient_id": p, "subtype": s, "survival_months": m, "event": e, "idh_status": None, "age": 60.0}
            for p, s, m, e in zip(patients, subtypes, months, events)]


SURVIVAL = {  # patient: (true subtype, predicted subtype, months, event)
    "S1": ("Classical", "Classical", 2.0, True), "S2": ("Classical", "Classical", 4.0, True),
    "S3": ("Classical", "Mesenchymal", 6.0, True), "S4": ("Mesenchymal", "Mesenchymal", 3.0, True),
    "S5": ("Mesenchymal", "Mesenchymal", 5.0, True), "S6": ("Mesenchymal", "Mesenchymal", 10.0, False),
}  # fmt: skip


def write_survival_cohort(root, cohort: str, with_enhancing: bool = True, months=True) -> None:
    ids = list(SURVIVAL)
    true, pred, m, ev = zip(*SURVIVAL.values())
    times = (list(m), list(ev)) if months else (None, None)
    write_table(root, "clinical_records", cohort, clinical(cohort, ids, list(true), *times))
    burden = [{"cohort": cohort, "patient_id": p, "roi_source": "predicted", "region": "whole_tumor", "volume_ml": 10.0 * (i + 1)}
              for i, p in enumerate(ids)]
    if with_enhancing:
        burden += [{"cohort": cohort, "patient_id": p, "roi_source": "ground_truth", "region": "enhancing", "volume_ml": 2.0 + i}
                   for i, p in enumerate(ids)]
    write_table(root, "tumor_burden", cohort, burden)
    preds = {"cohort": cohort, "patient_id": ids, "predicted_subtype": list(pred), "model_version": "1"}
    write_table(root, "subtype_predictions", cohort, {**preds, **{proba_column(s): 0.25 for s in SUBTYPES}})


def test_survival_view_medians_by_true_and_predicted_subtype(data_root):
    root = data_root
    write_survival_cohort(root, "surv")
    result = run(root, "surv")
    sql = 'select grouping, "group", n, n_events, median_months, logrank_p from survival_view order by 1, 2'
    view = query(DataRoot(root), sql)
    medians = {(r.grouping, r.group): (r.n, r.n_events, r.median_months) for r in view.itertuples()}
    assert medians == {  # hand-checked: KM steps 1 -> 2/3 -> 1/3 etc.; S(4) = 5/6 * 4/5 * 3/4 = 0.5 for "all"
        ("all", "all"): (6, 5, 4.0),
        ("true_subtype", "Classical"): (3, 3, 4.0), ("true_subtype", "Mesenchymal"): (3, 2, 5.0),
        ("predicted_subtype", "Classical"): (2, 2, 2.0), ("predicted_subtype", "Mesenchymal"): (4, 3, 5.0),
    }  # fmt: skip
    true_p = view.loc[view.grouping == "true_subtype", "logrank_p"].iloc[0]
    expected = logrank_test([2, 4, 6], [3, 5, 10], [1, 1, 1], [1, 1, 0]).p_value
    assert true_p == pytest.approx(expected)
    m = metadata(result, "survival_view")
    assert m["total_volume_roi_source"] == "predicted" and m["enhancing_volume"] == "ground_truth"
    assert m["plots"].count("data:image/png;base64,") == 4


def test_survival_view_without_enhancing_or_survival(data_root):
    root = data_root
    write_survival_cohort(root, "noenh", with_enhancing=False)
    write_survival_cohort(root, "nosurv", months=False)
    m = metadata(run(root, "noenh"), "survival_view")
    assert m["enhancing_volume"].startswith("absent")
    empty = run(root, "nosurv")
    assert empty.success and metadata(empty, "survival_view")["patients_with_survival"] == 0
    assert pd.read_parquet(DataRoot(root).table_file("survival_view", "nosurv")).empty
    by_cohort = query(DataRoot(root), "select cohort, count(*) n from survival_view group by 1")
    assert by_cohort.to_dict("records") == [{"cohort": "noenh", "n": 5}]
