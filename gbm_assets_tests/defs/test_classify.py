"""The classify assets through Dagster: wide features -> training table -> classifier -> gated champion
-> predictions.

Upstream tables (radiomic_features_wide, clinical_records) are written as Parquet files into a temp
data root; MLflow uses the default SQLite store under that root.
"""

import json
import os

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from gbm_assets.defs.classify.checks import (
    subtype_classifier_beats_majority_baseline,
    subtype_training_table_covers_every_subtype,
)
from gbm_assets.lib.classify.features import LONG_COLUMNS, wide_features
from gbm_assets.lib.classify.registry import MODEL_NAME
from gbm_assets.lib.classify.tables import PREDICTION_COLUMNS, proba_column
from gbm_assets.lib.contract import SUBTYPES
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic
from gbm_assets.lib.store.warehouse import query
from gbm_assets_tests.conftest import (
    add_cohort,
    check_evaluation,
    code_location,
    failure_message,
    materialize,
    metadata,
)

FEATURES = [  # (sequence, region, feature_class, feature); the last one is absent from cohort "fresh"
    ("any", "whole_tumor", "shape", "MeshVolume"), ("any", "whole_tumor", "shape", "Sphericity"),
    ("t1c", "whole_tumor", "firstorder", "Mean"), ("flair", "whole_tumor", "firstorder", "Entropy"),
    ("t2", "whole_tumor", "glcm", "Contrast"), ("t1", "whole_tumor", "glcm", "Correlation"),
]  # fmt: skip
FAST = {"n_splits": 3, "n_repeats": 1, "top_k_features": 5}
TRAIN = ["subtype_training_table", "subtype_classifier", "subtype_champion"]


@pytest.fixture
def root(data_root, monkeypatch):
    """The temp data root, with MLflow on its default store there; mlflow's global URI reset afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield data_root
    mlflow.set_tracking_uri(None)  # mlflow exports the URI to the environment; do not leak it to other tests


def registered(root, *cohorts) -> dg.DagsterInstance:
    """An ephemeral instance with `cohorts` and every cohort that has a table file under `root` registered:
    the training tables read every cohort's partition through the IO manager (AllPartitionMapping)."""
    written = {p.stem for p in (root / "tables").glob("*/*.parquet")} if (root / "tables").is_dir() else set()
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, *sorted(set(cohorts) | written - {"all"}))
    return instance


def run(root, selection, *, cohorts=(), partition=None, config=None, table=None, raise_on_error=True):
    """Materialize `selection`; `config` configures subtype_classifier, `table` subtype_training_table."""
    ops = {}
    if config is not None:
        ops["subtype_classifier"] = {"config": config}
    if table is not None:
        ops["subtype_training_table"] = {"config": table}
    return materialize(root, selection, partition, instance=registered(root, *cohorts), run_config=ops,
                       raise_on_error=raise_on_error)


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
    write_table(root, "radiomic_features_wide", "train", wide_features(pd.DataFrame(long_features("train", train, labels, seed=1))))
    write_table(root, "clinical_records", "train", clinical("train", train, labels))
    fresh = [f"F{i}" for i in range(6)]
    rows = long_features("fresh", fresh, [SUBTYPES[i % 4] for i in range(6)], seed=1, features=FEATURES[:-1])
    write_table(root, "radiomic_features_wide", "fresh", wide_features(pd.DataFrame(rows)))
    write_table(root, "clinical_records", "fresh", clinical("fresh", fresh, [None] * 6))


def champion_version(root) -> str:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)


def test_features_to_predictions_through_the_champion_gate(root):
    write_cohorts(root)
    first = run(root, TRAIN, config=FAST)
    table = query(DataRoot(root), "select * from subtype_training_table")
    assert len(table) == 24 and set(table["roi_source"]) == {"predicted"} and table["subtype"].notna().all()
    assert metadata(first, "subtype_training_table")["features"] == len(FEATURES)

    cv = metadata(first, "subtype_classifier")
    assert cv["mlp_balanced_accuracy"] > cv["majority_balanced_accuracy"] + 0.2 and cv["model_version"] == "1"
    assert check_evaluation(first, "subtype_classifier_beats_majority_baseline").passed
    assert check_evaluation(first, "subtype_classifier_beats_champion").passed  # no champion yet
    assert metadata(first, "subtype_champion")["champion_version"] == "1" == champion_version(root)
    summary = query(DataRoot(root), "select * from subtype_classifier order by model")
    assert list(summary["model"]) == ["logreg", "majority", "mlp", "rf"]
    wanted = {"accuracy", "balanced_accuracy", "macro_f1", "auc_mesenchymal", "mlflow_run_id", "model_version",
              "folds_sha256", "fold_balanced_accuracy"}
    assert wanted <= set(summary.columns)
    mlp = summary.set_index("model").loc["mlp"]
    assert np.mean(json.loads(mlp["fold_balanced_accuracy"])) == pytest.approx(mlp["balanced_accuracy"])
    report = DataRoot(root).model_dir("subtype_classifier") / cv["mlflow_run_id"]
    assert {"roc.png", "confusion.png", "top_features.png", "feature_columns.json"} <= {p.name for p in report.iterdir()}
    expected = json.loads((report / "feature_columns.json").read_text())
    assert len(expected) == len(FEATURES)
    # each figure its own entry, served by the MLflow UI from the run's artifacts (short, so shown inline)
    assert cv["plot_roc"].startswith("![") and "report%2Froc.png" in cv["plot_roc"] and len(cv["plot_roc"]) < 1000
    assert cv["mlflow_run"].endswith(f"/runs/{cv['mlflow_run_id']}") and "/#/experiments/" in cv["mlflow_run"]
    assert cv["mlflow_model_version"].endswith(f"/#/models/{MODEL_NAME}/versions/1")
    assert "mlflow ui --backend-store-uri sqlite:///" in cv["mlflow_ui_command"]
    assert "pooled out-of-fold" in cv["auc_definition"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert "cv_balanced_accuracy_mlp" in client.get_run(cv["mlflow_run_id"]).data.metrics

    # a step process starts with MLflow pointed elsewhere: the champion must still be found in the data root's store
    mlflow.set_tracking_uri(f"sqlite:///{root.parent / 'elsewhere' / 'mlflow.db'}")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    scored = run(root, ["subtype_predictions"], cohorts=["fresh"], partition="fresh")
    preds = query(DataRoot(root), "select * from subtype_predictions")
    assert list(preds.columns[: len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
    assert len(preds) == 6 and set(preds["model_version"]) == {"1"}
    assert np.allclose(preds[[proba_column(s) for s in SUBTYPES]].sum(axis=1), 1.0)
    assert preds["subtypes_multilabel"].str.len().gt(0).all()
    assert metadata(scored, "subtype_predictions")["missing_feature_names"] == [e for e in expected if e.startswith("t1__")]
    assert not preds["in_training_set"].any() and metadata(scored, "subtype_predictions")["in_training_set"] == 0
    # the training cohort scored by its own champion: every prediction is in-sample, and said so
    in_sample = metadata(run(root, ["subtype_predictions"], cohorts=["train"], partition="train"), "subtype_predictions")
    assert in_sample["in_training_set"] == 24 and "IN-SAMPLE" in in_sample["trust"]
    train_preds = pd.read_parquet(DataRoot(root).table_file("subtype_predictions", "train"))
    assert train_preds["in_training_set"].all()


def test_a_worse_classifier_is_not_promoted_and_a_better_one_is(root):
    write_cohorts(root)
    weak = run(root, TRAIN, config={**FAST, "select_k": 1})  # one feature: a weak but better-than-majority champion
    assert metadata(weak, "subtype_champion")["champion_version"] == "1"

    better = run(root, TRAIN, config=FAST)  # every feature, same folds: paired per-fold scores
    beats = check_evaluation(better, "subtype_classifier_beats_champion")
    assert beats.passed and beats.metadata["method"].value == "paired" and beats.metadata["margin"].value > 0
    assert metadata(better, "subtype_champion")["previous_version"] == "1" and champion_version(root) == "2"

    # ground-truth features are noise: registered as version 3, blocked by the gate, champion stays 2
    worse = run(root, TRAIN, config=FAST, table={"roi_source": "ground_truth"}, raise_on_error=False)
    assert metadata(worse, "subtype_classifier")["model_version"] == "3"
    assert not check_evaluation(worse, "subtype_classifier_beats_champion").passed
    assert not worse.asset_materializations_for_node("subtype_champion")
    assert champion_version(root) == "2"
    scored = run(root, ["subtype_predictions"], cohorts=["fresh"], partition="fresh")
    assert metadata(scored, "subtype_predictions")["model_version"] == "2"

    # other folds (4 instead of 3): the champion's settings are re-cross-validated on the new folds
    refolded = run(root, TRAIN, config={**FAST, "n_splits": 4, "select_k": 1}, raise_on_error=False)
    beats = check_evaluation(refolded, "subtype_classifier_beats_champion")
    assert beats.metadata["method"].value == "re-cross-validated" and not beats.passed
    assert champion_version(root) == "2"


def test_predictions_without_a_champion_say_to_train_first(root):
    write_cohorts(root)
    result = run(root, ["subtype_predictions"], cohorts=["fresh"], partition="fresh", raise_on_error=False)
    assert not result.success and "materialize subtype_classifier" in failure_message(result)


def test_cohort_without_features_fails_naming_it(root):
    write_table(root, "radiomic_features_wide", "hollow", wide_features(pd.DataFrame(columns=list(LONG_COLUMNS))))
    result = run(root, ["subtype_predictions"], cohorts=["hollow"], partition="hollow", raise_on_error=False)
    assert not result.success and "cohort 'hollow'" in failure_message(result)


def test_training_table_reads_the_configured_roi_source_and_cohorts(root):
    write_cohorts(root)
    result = run(root, ["subtype_training_table"], table={"roi_source": "ground_truth", "cohorts": ["train"]})
    table = pd.read_parquet(DataRoot(root).table_file("subtype_training_table", "all"))
    assert len(table) == 24 and set(table["roi_source"]) == {"ground_truth"} and set(table["cohort"]) == {"train"}
    assert metadata(result, "subtype_training_table")["subtype_counts"] == {s: 6 for s in SUBTYPES}


@pytest.mark.parametrize(
    ("asset", "config", "message"),
    [
        ("subtype_training_table", {"cohorts": ["fresh"]}, "no labelled patient"),
        ("subtype_training_table", {"cohorts": ["elsewhere"]}, "cohorts ['elsewhere']: no radiomic_features_wide"),
        ("subtype_training_table", {"roi_source": "manual"}, "roi_source 'manual' is unknown"),
        ("subtype_classifier", {"models": ["logreg", "majority"]}, "must include 'mlp'"),
    ],
)
def test_bad_configuration_fails_clearly(root, asset, config, message):
    write_cohorts(root)
    result = materialize(root, ["subtype_training_table", asset], run_config={asset: {"config": config}},
                         instance=registered(root), raise_on_error=False)
    assert not result.success and message in failure_message(result)


def test_training_table_check_fails_when_a_subtype_is_missing():
    table = pd.DataFrame({"subtype": ["Classical"] * 3 + ["Mesenchymal"] * 3 + ["Proneural"] * 3})
    result = subtype_training_table_covers_every_subtype(table)
    assert not result.passed and result.metadata["subtype_counts"].value["Neural"] == 0
    full = pd.DataFrame({"subtype": list(SUBTYPES) * 2})
    assert subtype_training_table_covers_every_subtype(full).passed


@pytest.mark.parametrize(("mlp", "passed"), [(0.6, True), (0.25, False), (np.nan, False)])
def test_majority_check_fails_unless_the_mlp_beats_it(mlp, passed):
    table = pd.DataFrame({"model": ["mlp", "majority"], "balanced_accuracy": [mlp, 0.25]})
    assert subtype_classifier_beats_majority_baseline(table).passed is passed


TARGETS_TRAIN = ["target_training_table", "idh_classifier", "idh_champion", "short_survival_classifier",
                 "short_survival_champion"]


def write_target_cohorts(root, idh=True) -> None:
    """Cohorts "a" and "b" (16 patients each, "b" shifted as another scanner would): features follow IDH status
    (and survival: mutants live longer); one patient per cohort has unknown IDH, one is censored at 4 months."""
    for k, cohort in enumerate(("a", "b")):
        patients = [f"{cohort.upper()}{i:02d}" for i in range(16)]
        mutant = [i % 2 == 0 for i in range(16)]
        rows = long_features(cohort, patients, ["Proneural" if m else "Classical" for m in mutant], seed=5)
        for r in rows:
            r["value"] += 2.0 * k  # a cohort (batch) effect for ComBat to remove
        write_table(root, "radiomic_features_wide", cohort, wide_features(pd.DataFrame(rows)))
        write_table(root, "clinical_records", cohort, [
            {"cohort": cohort, "patient_id": p, "subtype": "Proneural" if m else "Classical",
             "survival_months": 4.0 if i == 1 else (20.0 if m else 3.0), "event": 0 if i == 1 else 1,
             "idh_status": None if i == 3 else (("mutant" if m else "wildtype") if idh else "wildtype"), "age": 50.0}
            for i, (p, m) in enumerate(zip(patients, mutant))])  # fmt: skip


def test_idh_and_short_survival_classifiers_train_gate_promote_and_predict(root):
    write_target_cohorts(root)
    write_table(root, "radiomic_features_wide", "fresh",
                wide_features(pd.DataFrame(long_features("fresh", ["F0", "F1"], ["Proneural", "Classical"], seed=5))))
    ops = {f"{t}_classifier": {"config": {**FAST, "harmonize": "combat"}} for t in ("idh", "short_survival")}
    result = materialize(root, TARGETS_TRAIN, instance=registered(root), run_config=ops)
    idh = metadata(result, "idh_classifier")
    assert idh["excluded"] == {"IDH status unknown": 2} and idh["label_counts"] == {"mutant": 16, "wildtype": 14}
    assert idh["mlp_balanced_accuracy"] > idh["majority_balanced_accuracy"] and "batch = cohort" in idh["harmonize"]
    short = metadata(result, "short_survival_classifier")
    assert short["excluded"] == {"censored at or before 5 months": 2}
    for target in ("idh", "short_survival"):
        assert check_evaluation(result, f"{target}_classifier_beats_majority_baseline").passed
        assert check_evaluation(result, f"{target}_classifier_beats_champion").passed
        assert metadata(result, f"{target}_champion")["champion_version"] == "1"
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("gbm-idh-classifier", "champion").version) == "1"
    assert client.get_run(idh["mlflow_run_id"]).data.params["harmonize"] == "combat"

    for cohort in ("fresh", "a"):
        run(root, ["idh_predictions", "short_survival_predictions"], cohorts=[cohort], partition=cohort)
    preds = query(DataRoot(root), "select * from idh_predictions order by cohort, patient_id")
    assert list(preds.columns[:6]) == ["cohort", "patient_id", "predicted_idh", "p_mutant", "p_wildtype", "model_version"]
    fresh = preds[preds["cohort"] == "fresh"].set_index("patient_id")
    assert fresh.loc["F0", "predicted_idh"] == "mutant" and fresh.loc["F1", "predicted_idh"] == "wildtype"
    assert not fresh["in_training_set"].any() and preds.loc[preds["cohort"] == "a", "in_training_set"].sum() == 15  # 16 less the unknown IDH
    short_preds = query(DataRoot(root), "select * from short_survival_predictions where cohort = 'fresh'")
    assert np.allclose(short_preds[["p_short", "p_long"]].sum(axis=1), 1.0)


def test_a_target_with_one_class_is_skipped_with_its_reason_never_a_crash(root):
    write_target_cohorts(root, idh=False)  # every known IDH status is wildtype
    result = materialize(root, ["target_training_table", "idh_classifier", "idh_champion"], instance=registered(root))
    assert result.success
    skipped = metadata(result, "idh_classifier")["skipped"]
    assert "one class only" in skipped and "wildtype" in skipped
    table = pd.read_parquet(DataRoot(root).table_file("idh_classifier", "all"))
    assert list(table["status"]) == ["skipped"] and not table["registered"].any()
    assert check_evaluation(result, "idh_classifier_beats_majority_baseline").passed  # nothing to promote
    assert check_evaluation(result, "idh_classifier_beats_champion").metadata["skipped"].value == skipped
    assert metadata(result, "idh_champion")["promoted"] is False
    scored = run(root, ["idh_predictions"], cohorts=["a"], partition="a")
    assert "no champion of gbm-idh-classifier" in metadata(scored, "idh_predictions")["skipped"]
    assert pd.read_parquet(DataRoot(root).table_file("idh_predictions", "a")).empty


def test_training_tables_read_every_cohorts_partition_as_inputs(root):
    """Lineage carries the data: the features and clinical records arrive as AllPartitionMapping inputs, and a
    registered cohort that never materialized them ("unscored") is left out, not an error."""
    write_cohorts(root)
    result = run(root, ["subtype_training_table", "target_training_table"], cohorts=["unscored"])
    assert metadata(result, "target_training_table")["cohorts"] == ["fresh", "train"]
    defs = code_location()
    graph = defs.resolve_asset_graph()
    for key in ("subtype_training_table", "target_training_table", "survival_model"):
        node = graph.get(dg.AssetKey(key))
        assert {k.to_user_string() for k in node.parent_keys} >= {"radiomic_features_wide", "clinical_records"}
        spec_ins = defs.resolve_assets_def(key).keys_by_input_name
        assert {"radiomic_features_wide", "clinical_records"} <= set(spec_ins)  # inputs, not bare deps
