"""Subtype classification assets: training table, cross-validated classifier, per-cohort predictions
and the survival view.

The computation lives in `gbm_assets.lib.classify` and `gbm_assets.lib.survival`; these assets
load tables, call it, and record metadata, one MLflow run per classifier materialization and the
`gbm-subtype-classifier` registry entry whose `champion` alias the predictions use.
"""

import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
import dagster as dg
from threadpoolctl import threadpool_limits

from gbm_assets.defs.classify.config import (
    ClassifierSettings,
    PredictionsSettings,
    SurvivalSettings,
    TrainingTableSettings,
    check_roi_source,
)
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.classify import align_features, feature_columns, training_table, wide_features
from gbm_assets.lib.classify.report import (
    TrainedClassifier,
    cv_metrics,
    labelled_rows,
    markdown_table,
    png_markdown,
    predictions_table,
    read_tables,
    skops_trusted_types,
    survival_frame,
    survival_medians,
    survival_plots,
    table_files,
    train_classifier,
    write_classifier_report,
)
from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.survival import survival_vs_volume
from gbm_assets.defs.automation.sensors import EAGER, EAGER_EXCEPT_MODELS

MODEL_NAME = "gbm-subtype-classifier"
"""The MLflow registered model (and experiment) of the subtype classifier."""
CHAMPION_METRIC = "cv_balanced_accuracy_mlp"
"""Logged on every classifier run; the champion alias moves only when it strictly improves."""
FINAL_KIND = "mlp"


@contextmanager
def _warnings_logged(context) -> Iterator[list[str]]:
    """Collect the warnings raised inside; log each distinct message once (with its count)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for text, n in Counter(str(w.message) for w in caught).items():
        context.log.warning(text if n == 1 else f"{text} (x{n})")
        messages.append(text)


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    deps=[
        dg.AssetDep("radiomic_features", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("clinical_records", partition_mapping=dg.AllPartitionMapping()),
    ],
    description="Wide radiomic features of one ROI source joined with clinical labels, every labelled cohort.",
)
def subtype_training_table(
    context: dg.AssetExecutionContext, config: TrainingTableSettings, data_root: DataRootResource
) -> dg.Output[pd.DataFrame]:
    roi_source, root = check_roi_source(config.roi_source), data_root.root()
    wanted = config.cohorts or None
    features = table_files(root.table_dir("radiomic_features"), wanted)
    clinical = table_files(root.table_dir("clinical_records"), wanted)
    absent = [c for c in config.cohorts if c not in features or c not in clinical]
    if absent:
        raise dg.Failure(
            description=f"cohorts {absent}: no radiomic_features or clinical_records table; materialize them first"
        )
    cohorts = sorted(set(features) & set(clinical))
    if not cohorts:
        raise dg.Failure(description=f"no cohort has both radiomic_features and clinical_records under {root.tables_dir}")
    long = read_tables([features[c] for c in cohorts], where={"roi_source": roi_source})
    if long.empty:
        raise dg.Failure(description=f"no radiomic features with roi_source {roi_source!r} in cohorts {cohorts}")
    labels = read_tables([clinical[c] for c in cohorts])
    if labels.empty:
        raise dg.Failure(description=f"no clinical records in cohorts {cohorts}; no labels to train on")
    with _warnings_logged(context) as warned:
        try:
            table = training_table(wide_features(long), labels, roi_source)
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


def _log_and_register(context, root: DataRoot, X: pd.DataFrame, trained: TrainedClassifier, params: dict) -> dict:
    """One MLflow run: params, CV metrics, report files, the registered model; then the champion decision."""
    import mlflow
    import mlflow.sklearn
    import sklearn

    from gbm_assets.lib.tracking import TrackingStore, promote_if_better, tracked_run

    store = TrackingStore.for_data_root(root.root)
    tags = {"dagster.run_id": context.run_id, "dagster.asset_key": context.asset_key.to_user_string(), "dagster.partition": ""}
    features, thresholds = list(X.columns), {str(k): float(v) for k, v in trained.thresholds.items()}
    with tracked_run(store, MODEL_NAME, run_name=f"subtype-classifier-{context.run_id[:8]}", tags=tags) as run:
        folder = root.model_dir("subtype_classifier") / run.info.run_id
        pngs = write_classifier_report(folder, trained, FINAL_KIND, features)
        mlflow.log_params(params)
        mlflow.log_metrics(cv_metrics(trained.summary))
        mlflow.log_artifacts(str(folder), artifact_path="report")
        info = mlflow.sklearn.log_model(
            trained.model,
            name="model",
            registered_model_name=MODEL_NAME,
            input_example=X.head(3),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            skops_trusted_types=skops_trusted_types(trained.model),
            metadata={"feature_columns": features, "classes": [str(c) for c in trained.model.classes_],
                      "multilabel_thresholds": thresholds, "roi_source": params["roi_source"]},
        )
        version = str(info.registered_model_version)
        value = float(trained.summary.set_index("model").loc[FINAL_KIND, "balanced_accuracy"])
        decision = promote_if_better(MODEL_NAME, version, CHAMPION_METRIC, value)
    return {"run_id": run.info.run_id, "model_version": version, "folder": folder, "pngs": pngs,
            "tracking_uri": store.tracking_uri, **decision}


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"scikitlearn", "mlflow", "parquet"},
    ins={"subtype_training_table": dg.AssetIn()},
    description="Cross-validated MLP vs logistic regression, random forest and majority; the MLP is registered "
    "in MLflow as gbm-subtype-classifier and becomes champion only when its CV balanced accuracy improves. "
    "One row per model of CV metrics.",
)
def subtype_classifier(
    context: dg.AssetExecutionContext, config: ClassifierSettings, data_root: DataRootResource,
    subtype_training_table: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    table = subtype_training_table
    X = table[feature_columns(table)].set_axis(table["cohort"] + "/" + table["patient_id"], axis=0)
    y = table["subtype"].to_numpy(dtype=object)
    with _warnings_logged(context) as warned:
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
    record = _log_and_register(context, data_root.root(), X, trained, params)
    previous = record["previous_value"]
    by_model = summary.set_index("model")["balanced_accuracy"]
    return dg.Output(
        summary.assign(registered=summary["model"] == FINAL_KIND, n_patients=len(y), n_features=X.shape[1],
                       mlflow_run_id=record["run_id"], model_version=record["model_version"],
                       promoted=record["promoted"], champion_version=str(record["champion_version"])),
        metadata={
            "cv_summary": dg.MetadataValue.md(markdown_table(summary.drop(columns=["n_splits", "n_repeats"]))),
            "mlp_balanced_accuracy": float(by_model[FINAL_KIND]),
            "majority_balanced_accuracy": float(by_model.get("majority", np.nan)),
            "patients": len(y),
            "features": X.shape[1],
            "folds": f"{cv.n_splits} folds x {cv.n_repeats} repeats",
            "model_version": record["model_version"],
            "champion_version": str(record["champion_version"]),
            "promoted": bool(record["promoted"]),
            "previous_champion_balanced_accuracy": float(previous) if previous is not None else np.nan,
            "mlflow_run_id": record["run_id"],
            "mlflow_tracking_uri": record["tracking_uri"],
            "model_uri": f"models:/{MODEL_NAME}/{record['model_version']}",
            "report_dir": dg.MetadataValue.path(str(record["folder"])),
            "plots": dg.MetadataValue.md(png_markdown(record["pngs"])),
            "top_features": dg.MetadataValue.md(markdown_table(trained.importance, 4)),
            "multilabel_thresholds": dg.MetadataValue.json(trained.thresholds.round(4).to_dict()),
            "warnings": dg.MetadataValue.json(warned[:50]),
        },
    )


def _champion(root: DataRoot):
    """(model, model version, MLmodel metadata) of the registered champion, or a dg.Failure."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from gbm_assets.lib.tracking import CHAMPION, TrackingStore, ensure_experiment, using_tracking_uri

    store = TrackingStore.for_data_root(root.root)
    ensure_experiment(store, MODEL_NAME)  # creates the store once, under a lock
    try:
        version = MlflowClient(store.tracking_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException as exc:
        raise dg.Failure(description=f"no {CHAMPION} of {MODEL_NAME!r} in {store.tracking_uri}; "
                         "materialize subtype_classifier first") from exc
    uri = f"models:/{MODEL_NAME}/{version.version}"
    with using_tracking_uri(store.tracking_uri):
        return mlflow.sklearn.load_model(uri), version, mlflow.models.get_model_info(uri).metadata or {}


@dg.asset(
    automation_condition=EAGER_EXCEPT_MODELS,
    partitions_def=cohorts_partitions,
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet", "mlflow"},
    ins={"radiomic_features": dg.AssetIn(input_manager_key="table_io_manager")},
    deps=[subtype_classifier],
    description="The champion classifier applied to the cohort: per patient, each subtype's probability, "
    "the predicted subtype, the multi-label call and the model version.",
)
def subtype_predictions(
    context: dg.AssetExecutionContext, config: PredictionsSettings, data_root: DataRootResource,
    radiomic_features: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    if radiomic_features.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: radiomic_features is empty; nothing to score")
    model, version, meta = _champion(data_root.root())
    roi_source = check_roi_source(config.roi_source or meta.get("roi_source") or "predicted")
    try:
        wide = wide_features(radiomic_features)
    except (KeyError, ValueError) as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: radiomic_features: {exc}") from exc
    wide = wide.loc[wide["roi_source"] == roi_source].reset_index(drop=True)
    if wide.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no radiomic features with roi_source {roi_source!r} to score")
    expected = list(model.feature_names_in_)
    with _warnings_logged(context):
        X, missing, extra = align_features(wide, expected)
    if len(missing) == len(expected):
        raise dg.Failure(description=f"cohort {cohort!r}: none of the champion's {len(expected)} features is present "
                         f"(e.g. {expected[:3]}); were they extracted with other parameters?")
    with threadpool_limits(limits=1, user_api="blas"):
        proba = model.predict_proba(X)
    thresholds = meta.get("multilabel_thresholds")
    table = predictions_table(cohort, wide["patient_id"], proba, list(model.classes_), version.version, thresholds)
    return dg.Output(
        table,
        metadata={
            "patients": len(table),
            "model_version": str(version.version),
            "model_run_id": version.run_id,
            "roi_source": roi_source,
            "predicted_counts": dg.MetadataValue.json(table["predicted_subtype"].value_counts().astype(int).to_dict()),
            "missing_features": len(missing),
            "missing_feature_names": dg.MetadataValue.json(missing[:200]),
            "extra_features": len(extra),
            "extra_feature_names": dg.MetadataValue.json(extra[:200]),
        },
    )


@dg.asset(
    automation_condition=EAGER,
    partitions_def=cohorts_partitions,
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    ins={
        "clinical_records": dg.AssetIn(input_manager_key="table_io_manager"),
        "tumor_burden": dg.AssetIn(input_manager_key="table_io_manager"),
        "subtype_predictions": dg.AssetIn(),
    },
    description="Kaplan-Meier medians per true and predicted subtype with log-rank p; survival against "
    "whole-tumour and enhancing volume in the metadata. Empty when the cohort has no survival times.",
)
def survival_view(
    context: dg.AssetExecutionContext, config: SurvivalSettings, data_root: DataRootResource,
    clinical_records: pd.DataFrame, tumor_burden: pd.DataFrame, subtype_predictions: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    with _warnings_logged(context) as warned:
        try:
            roi_source = check_roi_source(config.roi_source)
            frame, notes = survival_frame(clinical_records, tumor_burden, subtype_predictions, roi_source)
        except ValueError as exc:
            raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
        table, km = survival_medians(frame, cohort)
        tests = survival_vs_volume(frame, total_volume_col="total_volume_ml", enhancing_volume_col="enhancing_volume_ml")
    if frame.empty:
        context.log.info(f"cohort {cohort}: no survival times in clinical_records; writing an empty survival_view")
        return dg.Output(table, metadata={"patients_with_survival": 0, "note": "no survival times in this cohort"})
    folder = data_root.root().root / "reports" / "survival_view" / cohort
    pngs = survival_plots(frame, km, notes, cohort, folder)
    return dg.Output(
        table,
        metadata={
            "patients_with_survival": len(frame),
            "events_known": int(frame["event"].notna().sum()),
            "medians": dg.MetadataValue.md(markdown_table(table.drop(columns=["cohort"]))),
            "volume_tests": dg.MetadataValue.md(markdown_table(tests)),
            "total_volume_roi_source": notes["total_volume_roi_source"] or "absent: no whole_tumor volume in tumor_burden",
            "enhancing_volume": notes["enhancing_roi_source"] or "absent: enhancing volume needs ground-truth masks",
            "plots": dg.MetadataValue.md(png_markdown(pngs)),
            "plots_dir": dg.MetadataValue.path(str(folder)),
            "warnings": dg.MetadataValue.json(warned[:50]),
        },
    )
