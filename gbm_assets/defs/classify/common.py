"""What every target's classify assets do, written once: train and register a classifier, gate it against
the majority class and the champion, promote it, score a cohort. The subtype assets (assets.py, checks.py,
predictions.py) and the per-target factory (targets.py) are thin wrappers around these functions.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from gbm_assets.defs.classify.config import ClassifierSettings
from gbm_assets.defs.classify.notes import warnings_logged
from gbm_assets.defs.metadata import (
    artifact_url,
    check_result,
    image_metadata,
    mlflow_links,
    model_version_url,
    table_metadata,
)
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.lib.classify.features import align_features
from gbm_assets.lib.classify.gate import beats_champion, champion_on_folds
from gbm_assets.lib.classify.harmonize import HARMONIZE
from gbm_assets.lib.classify.plots import AUC_DEFINITION
from gbm_assets.lib.classify.registry import (
    FINAL_KIND,
    champion,
    in_training_set,
    load_champion,
    log_classifier,
    set_champion,
)
from gbm_assets.lib.classify.tables import registered_row, training_matrix
from gbm_assets.lib.classify.targets import SUBTYPE, Target
from gbm_assets.lib.classify.training import train_classifier, write_classifier_report


def check_harmonize(value: str) -> str:
    if value not in HARMONIZE:
        raise dg.Failure(description=f"harmonize {value!r} is unknown; use one of {', '.join(HARMONIZE)}")
    return value


def train_and_log(context: dg.AssetExecutionContext, target: Target, config: ClassifierSettings,
                  data_root: DataRootResource, mlflow: MlflowResource, table: pd.DataFrame,
                  labels: pd.Series | str = "subtype") -> tuple[pd.DataFrame, dict]:
    """Cross-validate, fit, report and register `target`'s classifier on `table`'s rows (labels aligned).

    Returns the classifier table (one row per model kind) and its metadata. Raises `dg.Failure` when
    the data cannot be cross-validated (the other targets check `targets.skip_reason` first)."""
    harmonize = check_harmonize(config.harmonize)
    X, y = training_matrix(table, labels)
    with warnings_logged(context) as warned:
        try:
            trained = train_classifier(X, y, config.models, final_kind=FINAL_KIND, n_splits=config.n_splits,
                                       n_repeats=config.n_repeats, seed=config.seed, select_k=config.select_k,
                                       top_k=config.top_k_features, harmonize=harmonize, classes=target.classes)
        except ValueError as exc:
            raise dg.Failure(description=f"{target.name}_classifier on {len(y)} patients: {exc}") from exc
    cv, summary = trained.cv, trained.summary
    params = {"n_splits": config.n_splits, "n_splits_used": cv.n_splits, "n_repeats": config.n_repeats,
              "seed": config.seed, "select_k": config.select_k, "models": ",".join(config.models),
              "patients": len(y), "features": X.shape[1], "roi_source": ",".join(sorted(set(table["roi_source"]))),
              "cohorts": ",".join(sorted(set(table["cohort"])))[:500]}
    if target is not SUBTYPE or harmonize != "none":  # the subtype run's parameters stay as they were
        params.update(target=target.name, harmonize=harmonize)
    store = mlflow.store()
    slug = target.name.replace("_", "-")
    with mlflow.run(context, f"{slug}-classifier-{context.run_id[:8]}", experiment=target.model_name) as run:
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        folder = data_root.root().model_dir(f"{target.name}_classifier") / run_id
        pngs = write_classifier_report(folder, trained, FINAL_KIND, list(X.columns))
        version = log_classifier(store, run_id, X, trained, params, folder, model_name=target.model_name)
    out = summary.assign(
        registered=summary["model"] == FINAL_KIND, n_patients=len(y), n_features=X.shape[1], seed=config.seed,
        select_k=config.select_k if config.select_k is not None else -1, folds_sha256=trained.folds_sha256,
        fold_balanced_accuracy=[json.dumps(trained.fold_scores(m)) for m in summary["model"]],
        mlflow_run_id=run_id, model_version=version,
    )
    by_model = summary.set_index("model")["balanced_accuracy"]
    meta = {
        "cv_summary": table_metadata(summary.drop(columns=["n_splits", "n_repeats"]), index=False, digits=3),
        "auc_definition": f"auc_<{'subtype' if target is SUBTYPE else 'class'}> columns and the ROC legend: {AUC_DEFINITION}",
        "mlp_balanced_accuracy": float(by_model[FINAL_KIND]),
        "majority_balanced_accuracy": float(by_model.get("majority", np.nan)),
        "patients": len(y),
        "features": X.shape[1],
        "folds": f"{cv.n_splits} folds x {cv.n_repeats} repeats",
        "folds_sha256": trained.folds_sha256,
        "model_version": version,
        "mlflow_run_id": run_id,
        "mlflow_tracking_uri": store.tracking_uri,
        **mlflow_links(store.tracking_uri, experiment_id, run_id, target.model_name, version),
        "model_uri": f"models:/{target.model_name}/{version}",
        "report_dir": dg.MetadataValue.path(str(folder)),
        # one entry per figure, served by the MLflow UI from the run's artifacts (inline in Dagster)
        **{f"plot_{name}": image_metadata(None, f"{FINAL_KIND} {name}", url=artifact_url(run_id, f"report/{name}.png"))
           for name in pngs},
        "top_features": table_metadata(trained.importance, index=False, digits=4),
        "multilabel_thresholds": dg.MetadataValue.json(trained.thresholds.round(4).to_dict()),
        "warnings": dg.MetadataValue.json(warned[:50]),
    }
    if harmonize != "none":
        meta["harmonize"] = f"{harmonize}: batch = cohort, fitted inside every training fold"
    return out, meta


def majority_check(classifier: pd.DataFrame) -> dg.AssetCheckResult:
    """The MLP's CV balanced accuracy beats the majority's; a skipped classifier passes, saying why."""
    if "status" in classifier and (classifier["status"] == "skipped").all():
        return skipped_check(classifier)
    by_model = classifier.set_index("model")["balanced_accuracy"]
    mlp, majority = float(by_model.get("mlp", np.nan)), float(by_model.get("majority", np.nan))
    return check_result(
        bool(mlp > majority), mlp, f"mlp > majority ({majority:.3f})",  # NaN (a model not cross-validated) fails
        metadata={"failed_value": f"mlp {mlp:.3f} vs majority {majority:.3f}", "mlp_balanced_accuracy": mlp,
                  "majority_balanced_accuracy": majority, "margin": mlp - majority},
    )


def skipped_check(classifier: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(True, "skipped", "a trained classifier, or a recorded reason to skip", metadata={
        "skipped": str(classifier["skip_reason"].iloc[0]),
        "note": "the classifier was skipped: nothing registered, nothing to promote"})


def champion_check(mlflow: MlflowResource, target: Target, classifier: pd.DataFrame, training_table: pd.DataFrame,
                   labels: pd.Series | str = "subtype", table_name: str = "subtype_training_table") -> dg.AssetCheckResult:
    """Paired per-fold comparison with the current champion (see `checks.subtype_classifier_beats_champion`)."""
    if "status" in classifier and (classifier["status"] == "skipped").all():
        return skipped_check(classifier)
    row = registered_row(classifier)
    candidate = [float(v) for v in json.loads(row["fold_balanced_accuracy"])]
    meta = {"candidate_version": str(row["model_version"]), "folds_sha256": str(row["folds_sha256"])}
    mean = float(row["balanced_accuracy"])
    current = champion(mlflow.store(), target.model_name)
    if current is None:
        return check_result(True, mean, "candidate mean > champion mean (no champion yet)",
                            metadata={**meta, "champion_version": "none",
                                      "note": "no champion yet: the first version may become champion"})
    if current.version == meta["candidate_version"]:
        return check_result(True, mean, "candidate mean > champion mean (this version is the champion)",
                            metadata={**meta, "champion_version": current.version,
                                      "note": "this version is already the champion"})
    X, y = training_matrix(training_table, labels)
    try:
        scores, method = champion_on_folds(current.fold_scores, current.folds_sha256, current.params,
                                           meta["folds_sha256"], X, y, n_splits=int(row["n_splits"]),
                                           n_repeats=int(row["n_repeats"]), seed=int(row["seed"]), table=table_name)
    except ValueError as exc:
        return check_result(False, mean, "folds the champion can be compared on", description=str(exc),
                            metadata={**meta, "champion_version": current.version, "error": str(exc)})
    passed, comparison = beats_champion(candidate, scores)
    return check_result(
        passed, comparison["candidate_mean"], f"candidate mean > champion mean ({comparison['champion_mean']:.3f})",
        metadata={**meta, "champion_version": current.version, "method": method,
                  "candidate_balanced_accuracy": comparison["candidate_mean"],
                  "champion_balanced_accuracy": comparison["champion_mean"], "margin": comparison["margin"],
                  "folds": comparison["folds"], "folds_candidate_better": comparison["candidate_wins"]},
    )


def promote(context: dg.AssetExecutionContext, mlflow: MlflowResource, target: Target,
            classifier: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Move `target`'s champion alias to the registered version (a skipped classifier moves nothing)."""
    store = mlflow.store()
    if "status" in classifier and (classifier["status"] == "skipped").all():
        reason = str(classifier["skip_reason"].iloc[0])
        current = champion(store, target.model_name)
        table = pd.DataFrame([{
            "model_name": target.model_name, "champion_version": current.version if current else "",
            "previous_version": current.version if current else "", "mlflow_run_id": current.run_id if current else "",
            "cv_balanced_accuracy": np.nan, "promoted_at": pd.Timestamp.now(tz="UTC"),
            "dagster_run_id": context.run.run_id, "promoted": False, "skip_reason": reason,
        }])  # fmt: skip
        context.log.warning(f"{target.model_name}: classifier skipped ({reason}); champion unchanged")
        return dg.Output(table, metadata={"champion_version": current.version if current else "none",
                                          "skipped": reason, "promoted": False})
    row = registered_row(classifier)
    version = str(row["model_version"])
    previous = set_champion(store, version, target.model_name)
    context.log.info(f"{target.model_name}: champion {previous or '(none)'} -> {version}")
    table = pd.DataFrame([{
        "model_name": target.model_name, "champion_version": version, "previous_version": previous or "",
        "mlflow_run_id": str(row["mlflow_run_id"]), "cv_balanced_accuracy": float(row["balanced_accuracy"]),
        "promoted_at": pd.Timestamp.now(tz="UTC"), "dagster_run_id": context.run.run_id,
    }])  # fmt: skip
    if target is not SUBTYPE:
        table = table.assign(promoted=True, skip_reason="")
    return dg.Output(
        table,
        metadata={"champion_version": version, "previous_version": previous or "none",
                  "cv_balanced_accuracy": float(row["balanced_accuracy"]),
                  "model_uri": f"models:/{target.model_name}/{version}",
                  "mlflow_model_version": model_version_url(target.model_name, version)},
    )


def score(context: dg.AssetExecutionContext, mlflow: MlflowResource, target: Target, wide: pd.DataFrame, roi_source: str,
          model, current, meta: dict, make_table) -> tuple[pd.DataFrame, dict]:
    """Apply a loaded champion to one cohort's wide features (one ROI source) and say how far to trust it.

    `make_table(patient_ids, proba, classes)` builds the target's table; rows are labelled
    `<cohort>/<patient_id>` (the batch of a ComBat step)."""
    cohort = context.partition_key
    wide = wide.loc[wide["roi_source"] == roi_source].reset_index(drop=True)
    if wide.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no radiomic features with roi_source {roi_source!r} to score")
    expected = list(model.feature_names_in_)
    with warnings_logged(context):
        X, missing, extra = align_features(wide, expected)
        if len(missing) == len(expected):
            raise dg.Failure(description=f"cohort {cohort!r}: none of the champion's {len(expected)} features is present "
                             f"(e.g. {expected[:3]}); were they extracted with other parameters?")
        X.index = wide["cohort"].astype(str) + "/" + wide["patient_id"].astype(str)
        with threadpool_limits(limits=1, user_api="blas"):
            proba = model.predict_proba(X)
    table = make_table(wide["patient_id"], proba, list(model.classes_))
    table["in_training_set"] = pd.array(in_training_set(meta, cohort, list(table["patient_id"])), dtype="boolean")
    known = table["in_training_set"].notna()
    in_sample = int(table["in_training_set"].sum()) if known.all() else None
    if in_sample:
        context.log.warning(f"cohort {cohort}: {in_sample} of {len(table)} patients were in the champion's training set; "
                            "their predictions are in-sample (optimistic), not an estimate of accuracy")
    return table, {
        "patients": len(table),
        "model_version": current.version,
        "model_uri": f"models:/{target.model_name}/{current.version}",
        "model_run_id": current.run_id,
        "mlflow_model_version": model_version_url(target.model_name, current.version),
        "in_training_set": in_sample if in_sample is not None else "unknown (model logged without its training rows)",
        "out_of_sample": len(table) - in_sample if in_sample is not None else "unknown",
        "trust": ("all out-of-sample" if in_sample == 0 else "unknown" if in_sample is None
                  else f"{in_sample} of {len(table)} predictions are IN-SAMPLE: the champion was fitted on these "
                  "patients; do not read them as accuracy"),
        "roi_source": roi_source,
        "predicted_counts": dg.MetadataValue.json(table[target.label_column].value_counts().astype(int).to_dict()),
        "missing_features": len(missing),
        "missing_feature_names": dg.MetadataValue.json(missing[:200]),
        "extra_features": len(extra),
        "extra_feature_names": dg.MetadataValue.json(extra[:200]),
    }


__all__ = ["champion_check", "check_harmonize", "load_champion", "majority_check", "promote", "score", "train_and_log"]
