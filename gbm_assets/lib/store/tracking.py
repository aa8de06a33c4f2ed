"""MLflow helpers: one tracking store per data root, runs with provenance tags, the model registry.

No Dagster here: the Dagster resource (`defs/resources.py`) passes run ids and asset keys in
as plain tags. Each call of `tracked_run` is one MLflow run (unlike `dagster-mlflow`, which
shares one MLflow run per Dagster run and closes it early).

Every function takes the tracking URI explicitly and talks to `MlflowClient(uri)`. Only the
fluent calls that have no client form (`mlflow.start_run`, `mlflow.<flavor>.log_model`,
`mlflow.<flavor>.load_model`) run inside `using_tracking_uri`, which sets the URI and restores
both MLflow's URI and `$MLFLOW_TRACKING_URI` afterwards.

Default store: `sqlite:///<data root>/mlflow.db` with artifacts in `<data root>/mlartifacts/`.
MLflow records artifact locations as absolute `file://` URIs, so a data root that was copied,
moved or mounted elsewhere still points at the old root's artifacts; opening the store
(`TrackingStore.for_data_root`) rewrites those prefixes to the current root (`relocate_artifacts`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gbm_assets.lib.store.relocate import relocate_artifacts, store_lock

CHAMPION = "champion"


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at `uri` for the block, then restore MLflow's previous URI and
    `$MLFLOW_TRACKING_URI` exactly as they were (`mlflow.set_tracking_uri` also writes the
    variable, which would otherwise leak this store into every later client in the process)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    before_uri = utils._tracking_uri  # None unless someone called set_tracking_uri
    before_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before_uri)
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before_env


def _client(tracking_uri: str | None):
    """A client on `tracking_uri`; None means the fluent API's current URI (inside `tracked_run`)."""
    import mlflow
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri or mlflow.get_tracking_uri())


@dataclass(frozen=True)
class TrackingStore:
    """Where MLflow writes. `lock_dir` holds the lock that serialises store creation."""

    tracking_uri: str
    artifact_root: Path
    lock_dir: Path

    @classmethod
    def for_data_root(cls, root: Path, tracking_uri: str | None = None) -> TrackingStore:
        """The store of a data root: `sqlite:///<root>/mlflow.db` unless `tracking_uri` names another.

        The root's own SQLite store is relocated to this root first (`relocate_artifacts`), so a
        copied or moved root reads its own artifacts; a store named by `tracking_uri` is left alone.
        """
        root = Path(root).resolve()
        own_uri = f"sqlite:///{root / 'mlflow.db'}"
        store = cls(tracking_uri or own_uri, root / "mlartifacts", root)
        if store.tracking_uri == own_uri:
            store.relocate()
        return store

    def relocate(self) -> dict[str, int]:
        """Point this SQLite store's recorded artifact locations at `artifact_root` (`relocate.py`)."""
        return relocate_artifacts(
            Path(self.tracking_uri.removeprefix("sqlite:///")),
            self.artifact_root,
            self.lock_dir,
        )


def ensure_experiment(store: TrackingStore, name: str) -> str:
    """Create the store (SQLite schema) and the experiment once; return the experiment id.

    Serialised across processes with a lock file, so parallel steps never race the SQLite
    schema migration or create the experiment twice.
    """
    from mlflow import MlflowClient

    with store_lock(store.lock_dir):
        client = MlflowClient(store.tracking_uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        store.artifact_root.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=store.artifact_root.as_uri() + f"/{name}")


@contextmanager
def tracked_run(store: TrackingStore, experiment: str, run_name: str, tags: Mapping[str, str]) -> Iterator[object]:
    """Start one MLflow run in `experiment`, tagged with `tags`; yields the active run.

    Inside the block the fluent API (`mlflow.log_*`, `mlflow.<flavor>.log_model`) writes to `store`.
    """
    import mlflow

    experiment_id = ensure_experiment(store, experiment)
    with (
        using_tracking_uri(store.tracking_uri),
        mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run,
    ):
        yield run


def log_metric_history(
    run_id: str,
    history: list[Mapping[str, float]],
    step_key: str = "epoch",
    *,
    tracking_uri: str | None = None,
) -> None:
    """Log per-epoch metrics in one batch call (not one HTTP/SQL round trip per value).

    Args:
        history: one mapping per step; every numeric value except `step_key` becomes a metric.
        tracking_uri: the store; None = the fluent API's current URI (inside `tracked_run`).
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, int(row[step_key]))
        for row in history
        for key, value in row.items()
        if key != step_key and isinstance(value, (int, float))
    ]
    client = _client(tracking_uri)
    for start in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def log_run_metrics(tracking_uri: str, run_id: str, metrics: Mapping[str, float]) -> None:
    """Add `metrics` (name -> value, step 0) to a finished or running run, in batches."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    rows = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    client = _client(tracking_uri)
    for start in range(0, len(rows), 900):
        client.log_batch(run_id, metrics=rows[start : start + 900])


def log_and_register(log_model: Callable[..., object], model: object, model_name: str, **kwargs) -> str:
    """Inside `tracked_run`: log `model` with a flavour's `log_model` (e.g. `mlflow.pytorch.log_model`,
    `mlflow.sklearn.log_model`) as artifact "model", register it as `model_name`; return the new version."""
    info = log_model(model, name="model", registered_model_name=model_name, **kwargs)
    return str(info.registered_model_version)


def load_registered(
    tracking_uri: str,
    model_name: str,
    version: str,
    load_model: Callable[[str], object] | None = None,
) -> object:
    """Load version `version` of `model_name` with a flavour's `load_model` (default: pyfunc)."""
    import mlflow.pyfunc

    with using_tracking_uri(tracking_uri):
        return (load_model or mlflow.pyfunc.load_model)(f"models:/{model_name}/{version}")


def version_run_id(tracking_uri: str, model_name: str, version: str) -> str:
    """The MLflow run that produced a registered version."""
    return _client(tracking_uri).get_model_version(model_name, str(version)).run_id


def champion_version(tracking_uri: str, model_name: str) -> str | None:
    """The version the `champion` alias points at, or None when there is none (or no such model)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(tracking_uri).get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def champion_metric(model_name: str, metric: str, tracking_uri: str | None = None) -> tuple[str | None, float | None]:
    """The current champion's version and its run's value of `metric` (None, None when there is none)."""
    version = champion_version(tracking_uri, model_name)
    if version is None:
        return None, None
    run = _client(tracking_uri).get_run(version_run_id(tracking_uri, model_name, version))
    return version, run.data.metrics.get(metric)


def should_promote(candidate: float, champion: float | None, higher_is_better: bool = True) -> bool:
    """True when the candidate strictly beats the champion (or there is no champion yet)."""
    if champion is None:
        return True
    return candidate > champion if higher_is_better else candidate < champion


def promote_if_better(
    model_name: str,
    version: str,
    metric: str,
    value: float,
    higher_is_better: bool = True,
    tracking_uri: str | None = None,
) -> dict:
    """Move the `champion` alias to `version` only if `value` beats the current champion's.

    Returns:
        a dict with `promoted` (bool), `champion_version` (after the decision),
        `previous_version` and `previous_value`, for asset metadata. A version that already is
        the champion stays champion (`promoted` False).
    """
    previous_version, previous_value = champion_metric(model_name, metric, tracking_uri)
    promoted = previous_version != str(version) and should_promote(value, previous_value, higher_is_better)
    if promoted:
        _client(tracking_uri).set_registered_model_alias(model_name, CHAMPION, str(version))
    return {
        "promoted": promoted,
        "champion_version": str(version) if promoted else previous_version,
        "previous_version": previous_version,
        "previous_value": previous_value,
    }


def version_tags(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    """The tags of a registered version ({} when it has none)."""
    return dict(_client(tracking_uri).get_model_version(model_name, str(version)).tags or {})


def set_version_tag(tracking_uri: str, model_name: str, version: str, key: str, value: str) -> None:
    """Set one tag on a registered version."""
    _client(tracking_uri).set_model_version_tag(model_name, str(version), key, value)


def run_data(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
    """(params, latest metrics) of a run."""
    run = _client(tracking_uri).get_run(run_id)
    return dict(run.data.params), dict(run.data.metrics)


def download_run_artifacts(tracking_uri: str, run_id: str, artifact_path: str, dst: str | Path | None = None) -> Path:
    """Local copy of a run's artifact file or folder (under `dst`, or a temp folder)."""
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri,
                                               dst_path=None if dst is None else str(dst))  # fmt: skip
    return Path(path)


def log_run_artifacts(tracking_uri: str, run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
    """Upload every file of `folder` to a run's artifacts under `artifact_path`."""
    _client(tracking_uri).log_artifacts(run_id, str(folder), artifact_path=artifact_path)
