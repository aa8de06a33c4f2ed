"""MLflow helpers: one tracking store per data root, runs with provenance tags, champion aliases.

No Dagster here: the Dagster resource (`defs/resources.py`) passes run ids and asset keys in
as plain tags. Each call of `tracked_run` is one MLflow run (unlike `dagster-mlflow`, which
shares one MLflow run per Dagster run and closes it early).

Default store: `sqlite:///<data root>/mlflow.db` with artifacts in `<data root>/mlartifacts/`;
`$MLFLOW_TRACKING_URI` overrides.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

CHAMPION = "champion"


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (`mlflow.<flavor>.load_model("models:/...")`, `mlflow.log_*`) at `uri`
    for the block, then put `$MLFLOW_TRACKING_URI` back as it was. Without it MLflow 3 falls back
    to `./mlflow.db` in the working directory.

    `mlflow.set_tracking_uri` also writes the environment variable, which would make every later
    `TrackingStore.for_data_root` in this process (another data root, a test) use this store.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


@dataclass(frozen=True)
class TrackingStore:
    """Where MLflow writes. `lock_dir` holds the lock that serialises store creation."""

    tracking_uri: str
    artifact_root: Path
    lock_dir: Path

    @classmethod
    def for_data_root(cls, root: Path) -> "TrackingStore":
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"
        return cls(uri, Path(root).resolve() / "mlartifacts", Path(root).resolve())


def ensure_experiment(store: TrackingStore, name: str) -> str:
    """Create the store (SQLite schema) and the experiment once; return the experiment id.

    Serialised across processes with a lock file, so parallel steps never race the SQLite
    schema migration or create the experiment twice.
    """
    from mlflow import MlflowClient

    store.lock_dir.mkdir(parents=True, exist_ok=True)
    with open(store.lock_dir / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(store.tracking_uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        store.artifact_root.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=store.artifact_root.as_uri() + f"/{name}")


@contextmanager
def tracked_run(store: TrackingStore, experiment: str, run_name: str, tags: Mapping[str, str]) -> Iterator[object]:
    """Start one MLflow run in `experiment`, tagged with `tags`; yields the active run."""
    import mlflow

    experiment_id = ensure_experiment(store, experiment)
    with using_tracking_uri(store.tracking_uri), mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run:
        yield run


def log_metric_history(run_id: str, history: list[Mapping[str, float]], step_key: str = "epoch") -> None:
    """Log per-epoch metrics in one batch call (not one HTTP/SQL round trip per value)."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, int(row[step_key]))
        for row in history
        for key, value in row.items()
        if key != step_key and isinstance(value, (int, float))
    ]
    client = MlflowClient()
    for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def champion_metric(model_name: str, metric: str, tracking_uri: str | None = None) -> tuple[str | None, float | None]:
    """The current champion's version and its value of `metric` (None, None when there is none)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None, None
    run = client.get_run(version.run_id)
    value = run.data.metrics.get(metric)
    return str(version.version), value


def should_promote(candidate: float, champion: float | None, higher_is_better: bool = True) -> bool:
    """True when the candidate strictly beats the champion (or there is no champion yet)."""
    if champion is None:
        return True
    return candidate > champion if higher_is_better else candidate < champion


def promote_if_better(
    model_name: str, version: str, metric: str, value: float, higher_is_better: bool = True, tracking_uri: str | None = None
) -> dict:
    """Move the `champion` alias to `version` only if `value` beats the current champion's.

    Returns:
        a dict with `promoted` (bool), `champion_version` (after the decision),
        `previous_version` and `previous_value`, for asset metadata.
    """
    from mlflow import MlflowClient

    previous_version, previous_value = champion_metric(model_name, metric, tracking_uri)
    promoted = should_promote(value, previous_value, higher_is_better)
    if promoted:
        MlflowClient(tracking_uri).set_registered_model_alias(model_name, CHAMPION, version)
    return {
        "promoted": promoted,
        "champion_version": str(version) if promoted else previous_version,
        "previous_version": previous_version,
        "previous_value": previous_value,
    }
