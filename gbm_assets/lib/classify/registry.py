"""A classifier (the subtype's by default, or another target's `model_name`) in MLflow: log a trained classifier into the active run and register it,
read the `champion` alias (its version, per-fold scores and settings), load it, move it.

No Dagster. Every MLflow client gets the store's tracking URI explicitly (`TrackingStore`), and
`load_model` runs under `using_tracking_uri`, so nothing depends on `$MLFLOW_TRACKING_URI`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gbm_assets.lib.classify.training import TrainedClassifier, cv_metrics
from gbm_assets.lib.store.tracking import (
    CHAMPION,
    TrackingStore,
    ensure_experiment,
    using_tracking_uri,
)

MODEL_NAME = "gbm-subtype-classifier"
"""The MLflow registered model (and experiment) of the subtype classifier."""
FINAL_KIND = "mlp"
"""The model kind that is registered."""
CHAMPION_METRIC = f"cv_balanced_accuracy_{FINAL_KIND}"
"""Mean CV balanced accuracy of the registered kind, logged on every classifier run."""
FOLD_METRIC = f"cv_fold_balanced_accuracy_{FINAL_KIND}"
"""Per-fold balanced accuracy of the registered kind; MLflow step = fold position in (repeat, fold) order."""
TRAINING_ROWS_KEY = "training_rows"
"""MLmodel metadata: the rows ("<cohort>/<patient_id>") the registered model was fitted on."""
FOLDS_TAG = "cv_folds_sha256"
"""Run tag: `folds_fingerprint` of the folds the run cross-validated on."""


def skops_trusted_types(model) -> list[str]:
    """The types skops must be told to trust to load `model`: only ours, scikit-learn's and numpy's.

    Raises:
        TypeError: the model holds any other type not trusted by default.
    """
    import skops.io

    types = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in types if not t.startswith(("gbm_assets.", "sklearn.", "numpy."))]
    if foreign:
        raise TypeError(f"the pipeline holds types skops should not trust: {foreign}")
    return types


def log_classifier(store: TrackingStore, run_id: str, X: pd.DataFrame, trained: TrainedClassifier, params: dict,
                   report_dir: Path, model_name: str = MODEL_NAME) -> str:
    """Log params, CV metrics (means and the registered kind's per-fold scores), the report files and
    the model into the ACTIVE run `run_id`, and register the model as a new version of `model_name`
    (default the subtype classifier; `targets.Target.model_name` for the other targets).

    Does not move the champion alias (see `set_champion`). Returns the new version (a string).
    """
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(store.tracking_uri)
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in cv_metrics(trained.summary).items()]
    metrics += [Metric(FOLD_METRIC, v, now, i) for i, v in enumerate(trained.fold_scores(FINAL_KIND))]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_tag(run_id, FOLDS_TAG, trained.folds_sha256)
    client.log_artifacts(run_id, str(report_dir), artifact_path="report")
    features = list(X.columns)
    with using_tracking_uri(store.tracking_uri):
        info = mlflow.sklearn.log_model(
            trained.model,
            name="model",
            registered_model_name=model_name,
            input_example=X.head(3),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            skops_trusted_types=skops_trusted_types(trained.model),
            metadata={"feature_columns": features, "classes": [str(c) for c in trained.model.classes_],
                      "multilabel_thresholds": {str(k): float(v) for k, v in trained.thresholds.items()},
                      "roi_source": params.get("roi_source", ""),
                      TRAINING_ROWS_KEY: [str(i) for i in X.index]},
        )
    return str(info.registered_model_version)


@dataclass
class Champion:
    """The model version behind the `champion` alias and what its run recorded."""

    version: str
    run_id: str
    balanced_accuracy: float | None
    fold_scores: list[float] = field(default_factory=list)
    folds_sha256: str = ""
    params: dict[str, str] = field(default_factory=dict)


def in_training_set(meta: dict, cohort: str, patient_ids) -> list[bool | None]:
    """Per patient: was (cohort, patient_id) among the rows the model was fitted on?

    `meta` is the model's MLmodel metadata (`load_champion`'s third item); a model logged before
    `TRAINING_ROWS_KEY` existed gives None (unknown) for every patient.
    """
    rows = meta.get(TRAINING_ROWS_KEY)
    if rows is None:
        return [None] * len(patient_ids)
    fitted = set(map(str, rows))
    return [f"{cohort}/{p}" in fitted for p in patient_ids]


def champion(store: TrackingStore, model_name: str = MODEL_NAME) -> Champion | None:
    """The current champion of `model_name` in `store`, or None when there is none (nor any model)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ensure_experiment(store, model_name)  # creates the store once, under a lock
    client = MlflowClient(store.tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    run = client.get_run(version.run_id)
    history = sorted(client.get_metric_history(version.run_id, FOLD_METRIC), key=lambda m: m.step)
    return Champion(str(version.version), version.run_id, run.data.metrics.get(CHAMPION_METRIC),
                    [float(m.value) for m in history], run.data.tags.get(FOLDS_TAG, ""), dict(run.data.params))


def set_champion(store: TrackingStore, version: str, model_name: str = MODEL_NAME) -> str | None:
    """Point `model_name`'s `champion` alias at `version`; return the version it pointed at before (None: none)."""
    from mlflow import MlflowClient

    before = champion(store, model_name)
    MlflowClient(store.tracking_uri).set_registered_model_alias(model_name, CHAMPION, str(version))
    return before.version if before else None


def load_champion(store: TrackingStore, model_name: str = MODEL_NAME):
    """(fitted pipeline, `Champion`, MLmodel metadata) of `model_name`'s champion.

    Raises:
        LookupError: no champion in the store.
    """
    import mlflow
    import mlflow.sklearn

    current = champion(store, model_name)
    if current is None:
        raise LookupError(f"no {CHAMPION} of {model_name!r} in {store.tracking_uri}")
    uri = f"models:/{model_name}/{current.version}"
    with using_tracking_uri(store.tracking_uri):
        return mlflow.sklearn.load_model(uri), current, mlflow.models.get_model_info(uri).metadata or {}
