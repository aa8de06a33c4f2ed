"""MLflow helpers against a real (SQLite) store: champion promotion, registry versions and tags, and
that no call leaves $MLFLOW_TRACKING_URI or MLflow's URI changed."""

import hashlib
import os
import shutil
import sqlite3

import mlflow
import mlflow.pyfunc
import pytest
from mlflow import MlflowClient

from gbm_assets.lib.store.tracking import (
    CHAMPION,
    TrackingStore,
    champion_metric,
    champion_version,
    download_run_artifacts,
    ensure_experiment,
    log_and_register,
    log_metric_history,
    log_run_artifacts,
    log_run_metrics,
    promote_if_better,
    run_data,
    set_version_tag,
    should_promote,
    tracked_run,
    using_tracking_uri,
    version_run_id,
    version_tags,
)


@pytest.mark.parametrize(
    "candidate, champion, higher, expected",
    [
        (0.8, None, True, True),
        (0.8, 0.7, True, True),
        (0.7, 0.7, True, False),
        (0.6, 0.7, True, False),
        (5.0, 6.0, False, True),
    ],
)
def test_should_promote_only_when_strictly_better(candidate, champion, higher, expected):
    assert should_promote(candidate, champion, higher) is expected


def test_champion_moves_only_to_a_better_version(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = TrackingStore.for_data_root(tmp_path)
    uri = store.tracking_uri
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert ensure_experiment(store, "exp") == ensure_experiment(store, "exp")  # created once
    client = MlflowClient(uri)
    client.create_registered_model("m")
    assert champion_version(uri, "m") is None and champion_metric("m", "val_dice", uri) == (None, None)
    decisions = []
    for dice in (0.80, 0.70, 0.90):
        with tracked_run(store, "exp", "r", {"dagster.run_id": "x"}) as run:
            mlflow.log_metric("val_dice", dice)
        version = client.create_model_version(
            "m", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        ).version
        decisions.append(promote_if_better("m", version, "val_dice", dice, tracking_uri=uri))
    assert [d["promoted"] for d in decisions] == [True, False, True]
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == "3" == champion_version(uri, "m")
    assert champion_metric("m", "val_dice", uri) == ("3", 0.90)
    assert decisions[1]["champion_version"] == "1" and decisions[1]["previous_value"] == 0.80
    again = promote_if_better("m", "3", "val_dice", 0.90, tracking_uri=uri)  # the champion stays champion
    assert not again["promoted"] and again["champion_version"] == "3"
    assert client.get_run(run.info.run_id).data.tags["dagster.run_id"] == "x"
    assert version_run_id(uri, "m", "3") == run.info.run_id
    assert version_tags(uri, "m", "3") == {}
    set_version_tag(uri, "m", "3", "postprocess.keep_largest_component", "true")
    assert version_tags(uri, "m", "3") == {"postprocess.keep_largest_component": "true"}
    assert "MLFLOW_TRACKING_URI" not in os.environ  # nothing leaked into the environment


class _Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 2


def test_log_register_load_metrics_and_artifacts_with_explicit_uris(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/elsewhere.db")  # a user's setting, never used
    store = TrackingStore.for_data_root(tmp_path / "root")
    uri = store.tracking_uri
    with tracked_run(store, "exp", "r", {}) as run:
        log_metric_history(
            run.info.run_id,
            [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}],
            tracking_uri=uri,
        )
        version = log_and_register(mlflow.pyfunc.log_model, None, "doubler", python_model=_Doubler())
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/elsewhere.db"  # restored
    assert version == "1"
    log_run_metrics(uri, run.info.run_id, {"test_dice": 0.7})
    params, metrics = run_data(uri, run.info.run_id)
    assert metrics == {"loss": 0.25, "test_dice": 0.7} and params == {}
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    log_run_artifacts(uri, run.info.run_id, folder, artifact_path="figures")
    got = download_run_artifacts(uri, run.info.run_id, "figures", tmp_path / "dl")
    assert (got / "a.txt").read_text() == "hello"
    from gbm_assets.lib.store.tracking import load_registered

    model = load_registered(uri, "doubler", version)
    import pandas as pd

    assert model.predict(pd.DataFrame({"x": [1.0, 2.0]}))["x"].tolist() == [2.0, 4.0]
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/elsewhere.db"


def test_using_tracking_uri_restores_mlflow_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    with using_tracking_uri(f"sqlite:///{tmp_path / 'x.db'}"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'x.db'}"
    assert mlflow.get_tracking_uri() == before and "MLFLOW_TRACKING_URI" not in os.environ


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _locations(db_path) -> list[str]:
    """Every artifact location the store recorded (experiments, runs, versions, logged models)."""
    with sqlite3.connect(db_path) as db:
        return [row[0] for sql in ("SELECT artifact_location FROM experiments", "SELECT artifact_uri FROM runs",
                                   "SELECT source FROM model_versions", "SELECT storage_location FROM model_versions",
                                   "SELECT artifact_location FROM logged_models") for row in db.execute(sql)]  # fmt: skip


def test_a_copied_data_root_reads_its_own_artifacts_and_models(tmp_path, monkeypatch):
    """Root A logs a file and registers a sklearn model; B is a copy of A. Opening B rewrites B's
    recorded locations to B once (A's database untouched), so B reads B's files while A still
    exists, and still works once A is renamed away."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from gbm_assets.lib.store.tracking import load_registered

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    store_a = TrackingStore.for_data_root(a)
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    with tracked_run(store_a, "exp", "r", {}) as run:
        version = log_and_register(
            mlflow.sklearn.log_model,
            LogisticRegression().fit(x, y),
            "clf",
            pip_requirements=[],
        )
    run_id = run.info.run_id
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "a.txt").write_text("from a")
    log_run_artifacts(store_a.tracking_uri, run_id, folder, artifact_path="figures")
    client_a = MlflowClient(store_a.tracking_uri)  # version 2: its source a file:// path (pre-MLflow-3 style)
    client_a.create_model_version(
        "clf",
        source=client_a.search_logged_models([run.info.experiment_id])[0].artifact_location,
        run_id=run_id,
    )
    assert store_a.relocate() == {}  # a root's own store: nothing to do

    shutil.copytree(a, b)
    (next((b / "mlartifacts").rglob("a.txt"))).write_text("from b")
    a_db, before = a / "mlflow.db", _digest(a / "mlflow.db")
    # a store named explicitly (a server, another database) is never rewritten
    TrackingStore.for_data_root(b, store_a.tracking_uri)
    assert _digest(a_db) == before and _digest(b / "mlflow.db") == _digest(a_db)

    store_b = TrackingStore.for_data_root(b)  # relocates B's store to B
    moved = _locations(b / "mlflow.db")
    assert sum(str(a) in loc for loc in moved) == 0 and sum(str(b) in loc for loc in moved) >= 6
    assert any(loc.startswith("models:/") for loc in moved)  # MLflow 3 sources that are no path stay as they are
    assert store_b.relocate() == {}  # once
    assert _digest(a_db) == before  # the original's database is untouched
    dl = download_run_artifacts(store_b.tracking_uri, run_id, "figures", tmp_path / "dl_b")
    assert (dl / "a.txt").read_text() == "from b"
    assert (
        download_run_artifacts(store_a.tracking_uri, run_id, "figures", tmp_path / "dl_a") / "a.txt"
    ).read_text() == "from a"

    a.rename(tmp_path / "a" / "renamed")  # the original gone: B still downloads and loads its models
    assert (
        download_run_artifacts(store_b.tracking_uri, run_id, "figures", tmp_path / "dl_b2") / "a.txt"
    ).read_text() == "from b"
    for v in (version, "2"):
        model = load_registered(store_b.tracking_uri, "clf", v, mlflow.sklearn.load_model)
        assert model.predict(np.array([[0.0], [3.0]])).tolist() == [0, 1]


def test_only_exact_old_root_prefixes_are_rewritten(tmp_path, monkeypatch):
    """Locations a user chose outside `<old root>/mlartifacts`, and look-alike prefixes, stay as recorded."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    ensure_experiment(TrackingStore.for_data_root(a), "exp")
    shutil.copytree(a, b)
    old = (a.resolve() / "mlartifacts").as_uri()
    with sqlite3.connect(b / "mlflow.db") as db:
        db.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage) VALUES (?, ?, 'active')",
            ("other", f"{old}2/other"),
        )
        default = db.execute("SELECT artifact_location FROM experiments WHERE name = 'Default'").fetchone()[0]
    done = TrackingStore(
        f"sqlite:///{b.resolve() / 'mlflow.db'}",
        b.resolve() / "mlartifacts",
        b.resolve(),
    ).relocate()
    assert done == {"experiments.artifact_location": 1}
    with sqlite3.connect(b / "mlflow.db") as db:
        rows = dict(db.execute("SELECT name, artifact_location FROM experiments"))
    assert rows == {
        "Default": default,
        "exp": f"{(b.resolve() / 'mlartifacts').as_uri()}/exp",
        "other": f"{old}2/other",
    }
