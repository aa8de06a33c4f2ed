"""Champion promotion against a real (SQLite) MLflow registry."""

import mlflow
import pytest
from mlflow import MlflowClient

from gbm_assets.lib.tracking import CHAMPION, TrackingStore, champion_metric, ensure_experiment, promote_if_better, should_promote, tracked_run


@pytest.mark.parametrize("candidate, champion, higher, expected", [(0.8, None, True, True), (0.8, 0.7, True, True), (0.7, 0.7, True, False), (0.6, 0.7, True, False), (5.0, 6.0, False, True)])
def test_should_promote_only_when_strictly_better(candidate, champion, higher, expected):
    assert should_promote(candidate, champion, higher) is expected


def test_champion_moves_only_to_a_better_version(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = TrackingStore.for_data_root(tmp_path)
    assert store.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert ensure_experiment(store, "exp") == ensure_experiment(store, "exp")  # created once
    client = MlflowClient(store.tracking_uri)
    client.create_registered_model("m")
    decisions = []
    for dice in (0.80, 0.70, 0.90):
        with tracked_run(store, "exp", "r", {"dagster.run_id": "x"}) as run:
            mlflow.log_metric("val_dice", dice)
        version = client.create_model_version("m", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
        decisions.append(promote_if_better("m", version, "val_dice", dice))
    assert [d["promoted"] for d in decisions] == [True, False, True]
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == "3"
    assert champion_metric("m", "val_dice") == ("3", 0.90)
    assert decisions[1]["champion_version"] == "1" and decisions[1]["previous_value"] == 0.80
    assert client.get_run(run.info.run_id).data.tags["dagster.run_id"] == "x"
