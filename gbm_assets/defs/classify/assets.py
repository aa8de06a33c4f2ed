"""Classify assets, unpartitioned: the training table, the cross-validated classifier (a new MLflow
model version per materialization) and `subtype_champion`, which moves the registry's `champion`
alias to that version only after the blocking checks on `subtype_classifier` passed.

The computation lives in `gbm_assets.lib.classify`; these assets load tables, call it and record.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.classify.config import (
    ClassifierSettings,
    TrainingTableSettings,
    check_roi_source,
)
from gbm_assets.defs.classify.notes import warnings_logged
from gbm_assets.defs.metadata import (
    artifact_url,
    image_metadata,
    mlflow_links,
    model_version_url,
    table_metadata,
)
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.lib.classify.features import feature_columns, training_table
from gbm_assets.lib.classify.plots import AUC_DEFINITION
from gbm_assets.lib.classify.registry import (
    FINAL_KIND,
    MODEL_NAME,
    log_classifier,
    set_champion,
)
from gbm_assets.lib.classify.tables import (
    labelled_rows,
    read_tables,
    registered_row,
    table_files,
    training_matrix,
)
from gbm_assets.lib.classify.training import train_classifier, write_classifier_report


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    deps=[
        dg.AssetDep("radiomic_features_wide", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("clinical_records", partition_mapping=dg.AllPartitionMapping()),
    ],
    description="Wide radiomic features (radiomic_features_wide) of one ROI source joined with clinical "
    "labels, every labelled cohort.",
)
def subtype_training_table(
    context: dg.AssetExecutionContext, config: TrainingTableSettings, data_root: DataRootResource
) -> dg.Output[pd.DataFrame]:
    """Reads every cohort's radiomic_features_wide and clinical_records file under the data root (the
    IO manager loads one partition at a time; the AllPartitionMapping deps keep the lineage)."""
    roi_source, root = check_roi_source(config.roi_source), data_root.root()
    wanted = config.cohorts or None
    features = table_files(root.table_dir("radiomic_features_wide"), wanted)
    clinical = table_files(root.table_dir("clinical_records"), wanted)
    absent = [c for c in config.cohorts if c not in features or c not in clinical]
    if absent:
        raise dg.Failure(
            description=f"cohorts {absent}: no radiomic_features_wide or clinical_records table; materialize them first"
        )
    cohorts = sorted(set(features) & set(clinical))
    if not cohorts:
        raise dg.Failure(description=f"no cohort has both radiomic_features_wide and clinical_records under {root.tables_dir}")
    wide = read_tables([features[c] for c in cohorts], where={"roi_source": roi_source})
    if wide.empty:
        raise dg.Failure(description=f"no radiomic features with roi_source {roi_source!r} in cohorts {cohorts}")
    labels = read_tables([clinical[c] for c in cohorts])
    if labels.empty:
        raise dg.Failure(description=f"no clinical records in cohorts {cohorts}; no labels to train on")
    with warnings_logged(context) as warned:
        try:
            table = training_table(wide, labels, roi_source)
        except (KeyError, ValueError) as exc:
            raise dg.Failure(description=f"subtype_training_table (cohorts {cohorts}): {exc}") from exc
    labelled, dropped = labelled_rows(table)
    if labelled.empty:
        raise dg.Failure(
            description=f"no labelled patient with {roi_source!r} radiomic features in cohorts {cohorts} "
            f"({len(table)} patients with features, none with a subtype)"
        )
    return dg.Output(
        labelled,
        metadata={
            "roi_source": roi_source,
            "cohorts": dg.MetadataValue.json(sorted(set(labelled["cohort"]))),
            "patients": len(labelled),
            "features": len(feature_columns(labelled)),
            "subtype_counts": dg.MetadataValue.json({k: int(v) for k, v in labelled["subtype"].value_counts().items()}),
            "unlabelled_patients": len(table) - len(labelled),
            "unmatched_imaging": len(table.attrs.get("unmatched_imaging", [])),
            "unmatched_clinical": len(table.attrs.get("unmatched_clinical", [])),
            "dropped_all_missing_features": dg.MetadataValue.json(dropped[:200]),
            "warnings": dg.MetadataValue.json(warned),
        },
    )


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"scikitlearn", "mlflow", "parquet"},
    ins={"subtype_training_table": dg.AssetIn()},
    description="Cross-validated MLP vs logistic regression, random forest and majority; the MLP is registered "
    "in MLflow as a new version of gbm-subtype-classifier (subtype_champion decides whether it becomes "
    "champion). One row per model: CV metrics, per-fold balanced accuracy, the fold fingerprint and version.",
)
def subtype_classifier(
    context: dg.AssetExecutionContext, config: ClassifierSettings, data_root: DataRootResource,
    mlflow: MlflowResource, subtype_training_table: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    table = subtype_training_table
    X, y = training_matrix(table)
    with warnings_logged(context) as warned:
        try:
            trained = train_classifier(X, y, config.models, final_kind=FINAL_KIND, n_splits=config.n_splits,
                                       n_repeats=config.n_repeats, seed=config.seed, select_k=config.select_k,
                                       top_k=config.top_k_features)
        except ValueError as exc:
            raise dg.Failure(description=f"subtype_classifier on {len(y)} patients: {exc}") from exc
    cv, summary = trained.cv, trained.summary
    params = {"n_splits": config.n_splits, "n_splits_used": cv.n_splits, "n_repeats": config.n_repeats,
              "seed": config.seed, "select_k": config.select_k, "models": ",".join(config.models),
              "patients": len(y), "features": X.shape[1], "roi_source": ",".join(sorted(set(table["roi_source"]))),
              "cohorts": ",".join(sorted(set(table["cohort"])))[:500]}
    store = mlflow.store()
    with mlflow.run(context, f"subtype-classifier-{context.run_id[:8]}", experiment=MODEL_NAME) as run:
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        folder = data_root.root().model_dir("subtype_classifier") / run_id
        pngs = write_classifier_report(folder, trained, FINAL_KIND, list(X.columns))
        version = log_classifier(store, run_id, X, trained, params, folder)
    out = summary.assign(
        registered=summary["model"] == FINAL_KIND, n_patients=len(y), n_features=X.shape[1], seed=config.seed,
        select_k=config.select_k if config.select_k is not None else -1, folds_sha256=trained.folds_sha256,
        fold_balanced_accuracy=[json.dumps(trained.fold_scores(m)) for m in summary["model"]],
        mlflow_run_id=run_id, model_version=version,
    )
    by_model = summary.set_index("model")["balanced_accuracy"]
    return dg.Output(
        out,
        metadata={
            "cv_summary": table_metadata(summary.drop(columns=["n_splits", "n_repeats"]), index=False, digits=3),
            "auc_definition": f"auc_<subtype> columns and the ROC legend: {AUC_DEFINITION}",
            "mlp_balanced_accuracy": float(by_model[FINAL_KIND]),
            "majority_balanced_accuracy": float(by_model.get("majority", np.nan)),
            "patients": len(y),
            "features": X.shape[1],
            "folds": f"{cv.n_splits} folds x {cv.n_repeats} repeats",
            "folds_sha256": trained.folds_sha256,
            "model_version": version,
            "mlflow_run_id": run_id,
            "mlflow_tracking_uri": store.tracking_uri,
            **mlflow_links(store.tracking_uri, experiment_id, run_id, MODEL_NAME, version),
            "model_uri": f"models:/{MODEL_NAME}/{version}",
            "report_dir": dg.MetadataValue.path(str(folder)),
            # one entry per figure, served by the MLflow UI from the run's artifacts (inline in Dagster)
            **{f"plot_{name}": image_metadata(None, f"{FINAL_KIND} {name}", url=artifact_url(run_id, f"report/{name}.png"))
               for name in pngs},
            "top_features": table_metadata(trained.importance, index=False, digits=4),
            "multilabel_thresholds": dg.MetadataValue.json(trained.thresholds.round(4).to_dict()),
            "warnings": dg.MetadataValue.json(warned[:50]),
        },
    )


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"mlflow", "parquet"},
    ins={"subtype_classifier": dg.AssetIn()},
    description="Moves the champion alias of gbm-subtype-classifier to the version subtype_classifier registered. "
    "Runs only when the blocking checks subtype_classifier_beats_majority_baseline and "
    "subtype_classifier_beats_champion passed. One row: the champion and the version it replaced.",
)
def subtype_champion(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, subtype_classifier: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    row = registered_row(subtype_classifier)
    version = str(row["model_version"])
    previous = set_champion(mlflow.store(), version)
    context.log.info(f"{MODEL_NAME}: champion {previous or '(none)'} -> {version}")
    table = pd.DataFrame([{
        "model_name": MODEL_NAME, "champion_version": version, "previous_version": previous or "",
        "mlflow_run_id": str(row["mlflow_run_id"]), "cv_balanced_accuracy": float(row["balanced_accuracy"]),
        "promoted_at": pd.Timestamp.now(tz="UTC"), "dagster_run_id": context.run.run_id,
    }])  # fmt: skip
    return dg.Output(
        table,
        metadata={"champion_version": version, "previous_version": previous or "none",
                  "cv_balanced_accuracy": float(row["balanced_accuracy"]),
                  "model_uri": f"models:/{MODEL_NAME}/{version}",
                  "mlflow_model_version": model_version_url(MODEL_NAME, version)},
    )
