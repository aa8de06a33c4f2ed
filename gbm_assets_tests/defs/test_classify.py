"""The classify assets through Dagster: features -> training table -> classifier -> predictions, and the survival view.

Upstream tables (radiomic_features, clinical_records, tumor_burden) are written as Parquet files into a
temp data root and declared as external `AssetSpec`s; MLflow uses the default SQLite store under that root.
"""

import os

import mlflow
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test

from gbm_assets.defs import classify
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource, PartitionedParquetIOManager
from gbm_assets.lib.classify.features import LONG_COLUMNS
from gbm_assets.lib.classify.report import PREDICTION_COLUMNS, proba_column
from gbm_assets.lib.contract import SUBTYPES
from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.tables import write_parquet_atomic
from gbm_assets.lib.warehouse import query

UPSTREAM = [dg.AssetSpec(k, partitions_def=cohorts_partitions) for k in ("radiomic_features", "clinical_records", "tumor_burden")]
FEATURES = [  # (sequence, region, feature_class, feature); the last one is absent from cohort "fresh"
    ("any", "whole_tumor", "shape", "MeshVolume"), ("any", "whole_tumor", "shape", "Sphericity"),
    ("t1c", "whole_tumor", "firstorder", "Mean"), ("flair", "whole_tumor", "firstorder", "Entropy"),
    ("t2", "whole_tumor", "glcm", "Contrast"), ("t1", "whole_tumor", "glcm", "Correlation"),
]  # fmt: skip
FAST = {"n_splits": 3, "n_repeats": 1, "top_k_features": 5}


@pytest.fixture
def root(data_root, monkeypatch):
    """The temp data root, with MLflow on its default store there; mlflow's global URI reset afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield data_root
    import mlflow

    mlflow.set_tracking_uri(None)  # mlflow exports the URI to the environment; do not leak it to other tests


def materialize(root, selection, cohorts=(), partition=None, run_config=None, raise_on_error=True):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("cohorts", list(cohorts))
    return dg.materialize(
        [*UPSTREAM, *classify.assets, *classify.checks],
        selection=selection,
        partition_key=partition,
        instance=instance,
        run_config=run_config,
        resources={
            "data_root": DataRootResource(path=str(root)),
            "table_io_manager": PartitionedParquetIOManager(data_root=str(root)),
        },
        raise_on_error=raise_on_error,
    )


def classifier_config(config: dict) -> dict:
    return {"ops": {"subtype_classifier": {"config": config}}}


def write_table(root, table: str, cohort: str, rows) -> None:
    write_parquet_atomic(pd.DataFrame(rows), DataRoot(root).table_file(table, cohort))


def long_features(cohort: str, patients: list[str], subtypes: list, seed: int, features=FEATURES) -> list[dict]:
    """Long radiomics rows; predicted-ROI values shift with the subtype (plus noise), ground truth is noise."""
    rng = np.random.default_rng(seed)
    shift = {s: rng.normal(0, 1.5, len(features)) for s in SUBTYPES}
    rows = []
    for patient, subtype in zip(patients, subtypes):
        for source in ("predicted", "ground_truth"):
            base = shift.get(subtype, np.zeros(len(features))) if source == "predicted" else 0
            for (seq, region, cls, name), value in zip(features, base + rng.normal(0, 0.6, len(features))):
                rows.append({"cohort": cohort, "patient_id": patient, "sequence": seq, "roi_source": source,
                             "region": region, "feature_class": cls, "feature": name, "value": float(value)})
    return rows


def clinical(cohort: str, patients, subtypes, months=None, events=None) -> list[dict]:
    n = len(patients)
    months = months if months is not None else [None] * n
    events = events if events is not None else [None] * n
    return [{"cohort": cohort, "patient_id": p, "subtype": s, "survival_months": m, "event": e, "idh_status": None, "age": 60.0}
            for p, s, m, e in zip(patients, subtypes, months, events)]


def write_cohorts(root) -> None:
    """Cohort "train": 24 labelled patients (6 per subtype); cohort "fresh": 6 unlabelled lacking one feature."""
    train = [f"T{i:02d}" for i in range(24)]
    labels = [SUBTYPES[i % 4] for i in range(24)]
    write_table(root, "radiomic_features", "train", long_features("train", train, labels, seed=1))
    write_table(root, "clinical_records", "train", clinical("train", train, labels))
    fresh = [f"F{i}" for i in range(6)]
    rows = long_features("fresh", fresh, [SUBTYPES[i % 4] for i in range(6)], seed=1, features=FEATURES[:-1])
    write_table(root, "radiomic_features", "fresh", rows)
    write_table(root, "clinical_records", "fresh", clinical("fresh", fresh, [None] * 6))


def meta(result, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def failure_message(result) -> str:
    return next(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def tmp_path_factory_elsewhere(root):
    return root.parent / "elsewhere" / "mlflow.db"


def test_features_to_predictions_with_a_guarded_champion(root):
    from mlflow import MlflowClient

    write_cohorts(root)
    first = materialize(root, ["subtype_training_table", "subtype_classifier"], run_config=classifier_config(FAST))
    assert first.success
    table = query(DataRoot(root), "select * from subtype_training_table")
    assert len(table) == 24 and set(table["roi_source"]) == {"predicted"} and table["subtype"].notna().all()
    assert meta(first, "subtype_training_table")["features"] == len(FEATURES)

    cv = meta(first, "subtype_classifier")
    assert cv["mlp_balanced_accuracy"] > cv["majority_balanced_accuracy"] + 0.2
    assert cv["promoted"] and cv["model_version"] == "1" == cv["champion_version"]
    assert checks(first)["subtype_classifier_beats_majority_baseline"].passed
    summary = query(DataRoot(root), "select * from subtype_classifier order by model")
    assert list(summary["model"]) == ["logreg", "majority", "mlp", "rf"]
    wanted = {"accuracy", "balanced_accuracy", "macro_f1", "auc_mesenchymal", "mlflow_run_id", "model_version", "promoted"}
    assert wanted <= set(summary.columns)
    report = DataRoot(root).model_dir("subtype_classifier") / cv["mlflow_run_id"]
    assert {"roc.png", "confusion.png", "top_features.png", "feature_columns.json"} <= {p.name for p in report.iterdir()}
    expected = json.loads((report / "feature_columns.json").read_text())
    assert len(expected) == len(FEATURES) and "data:image/png;base64," in cv["plots"]

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("gbm-subtype-classifier", "champion").version) == "1"
    assert "cv_balanced_accuracy_mlp" in client.get_run(cv["mlflow_run_id"]).data.metrics

    # a step process starts with MLflow pointed nowhere in particular: the champion must still be
    # found in the data root's store (this once fell back to ./mlflow.db)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path_factory_elsewhere(root)}")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # set_tracking_uri exports it; a user override is not what we simulate
    scored = materialize(root, ["subtype_predictions"], cohorts=["fresh"], partition="fresh")
    assert scored.success and checks(scored)["subtype_predictions_probabilities_sum_to_one"].passed
    preds = query(DataRoot(root), "select * from subtype_predictions")
    assert list(preds.columns[: len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
    assert len(preds) == 6 and set(preds["model_version"]) == {"1"}
    assert np.allclose(preds[[proba_column(s) for s in SUBTYPES]].sum(axis=1), 1.0)
    assert preds["subtypes_multilabel"].str.len().gt(0).all()
    pmeta = meta(scored, "subtype_predictions")
    assert pmeta["missing_feature_names"] == [e for e in expected if e.startswith("t1__")]  # FEATURES[-1], by name

    # equal (not better) CV balanced accuracy: registered as version 2, the champion stays 1
    second = materialize(root, ["subtype_classifier"], run_config=classifier_config({**FAST, "models": ["mlp", "majority"]}))
    again = meta(second, "subtype_classifier")
    assert again["model_version"] == "2" and not again["promoted"] and again["champion_version"] == "1"
    assert again["mlp_balanced_accuracy"] == cv["mlp_balanced_accuracy"]
    assert str(client.get_model_version_by_alias("gbm-subtype-classifier", "champion").version) == "1"
    assert {str(v.version) for v in client.search_model_versions("name='gbm-subtype-classifier'")} == {"1", "2"}


def test_predictions_without_a_champion_say_to_train_first(root):
    write_cohorts(root)
    result = materialize(root, ["subtype_predictions"], cohorts=["fresh"], partition="fresh", raise_on_error=False)
    assert not result.success and "materialize subtype_classifier first" in failure_message(result)


def test_cohort_without_features_fails_naming_it(root):
    write_table(root, "radiomic_features", "hollow", {c: pd.Series([], dtype=str) for c in LONG_COLUMNS})
    result = materialize(root, ["subtype_predictions"], cohorts=["hollow"], partition="hollow", raise_on_error=False)
    assert not result.success and "cohort 'hollow'" in failure_message(result)


def test_training_table_reads_the_configured_roi_source_and_cohorts(root):
    write_cohorts(root)
    config = {"roi_source": "ground_truth", "cohorts": ["train"]}
    result = materialize(root, ["subtype_training_table"], run_config={"ops": {"subtype_training_table": {"config": config}}})
    table = pd.read_parquet(DataRoot(root).table_file("subtype_training_table", "all"))
    assert len(table) == 24 and set(table["roi_source"]) == {"ground_truth"} and set(table["cohort"]) == {"train"}
    assert meta(result, "subtype_training_table")["subtype_counts"] == {s: 6 for s in SUBTYPES}


@pytest.mark.parametrize(
    ("asset", "config", "message"),
    [
        ("subtype_training_table", {"cohorts": ["fresh"]}, "no labelled patient"),
        ("subtype_training_table", {"cohorts": ["elsewhere"]}, "cohorts ['elsewhere']: no radiomic_features"),
        ("subtype_training_table", {"roi_source": "manual"}, "roi_source 'manual' is unknown"),
        ("subtype_classifier", {"models": ["logreg", "majority"]}, "must include 'mlp'"),
    ],
)
def test_bad_configuration_fails_clearly(root, asset, config, message):
    write_cohorts(root)
    run_config = {"ops": {asset: {"config": config}}}
    result = materialize(root, ["subtype_training_table", asset], raise_on_error=False, run_config=run_config)
    assert not result.success and message in failure_message(result)


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


def test_survival_view_medians_by_true_and_predicted_subtype(root):
    write_survival_cohort(root, "surv")
    result = materialize(root, ["survival_view"], cohorts=["surv"], partition="surv")
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
    m = meta(result, "survival_view")
    assert m["total_volume_roi_source"] == "predicted" and m["enhancing_volume"] == "ground_truth"
    assert m["plots"].count("data:image/png;base64,") == 4


def test_survival_view_without_enhancing_or_survival(root):
    write_survival_cohort(root, "noenh", with_enhancing=False)
    write_survival_cohort(root, "nosurv", months=False)
    m = meta(materialize(root, ["survival_view"], cohorts=["noenh"], partition="noenh"), "survival_view")
    assert m["enhancing_volume"].startswith("absent")
    empty = materialize(root, ["survival_view"], cohorts=["nosurv"], partition="nosurv")
    assert empty.success and meta(empty, "survival_view")["patients_with_survival"] == 0
    assert pd.read_parquet(DataRoot(root).table_file("survival_view", "nosurv")).empty
    by_cohort = query(DataRoot(root), "select cohort, count(*) n from survival_view group by 1")
    assert by_cohort.to_dict("records") == [{"cohort": "noenh", "n": 5}]
