"""subtype_predictions: the champion classifier applied to one cohort's wide radiomic features."""

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from gbm_assets.defs.classify.config import PredictionsSettings, check_roi_source
from gbm_assets.defs.classify.notes import warnings_logged
from gbm_assets.defs.conditions import EAGER_EXCEPT_MODELS
from gbm_assets.defs.metadata import model_version_url
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.classify.features import align_features
from gbm_assets.lib.classify.registry import MODEL_NAME, in_training_set, load_champion
from gbm_assets.lib.classify.tables import predictions_table


@dg.asset(
    automation_condition=EAGER_EXCEPT_MODELS,
    partitions_def=cohorts_partitions,
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet", "mlflow"},
    ins={"radiomic_features_wide": dg.AssetIn()},
    deps=["subtype_champion"],
    description="The champion classifier applied to the cohort: per patient, each subtype's probability, "
    "the predicted subtype, the multi-label call, the model version and in_training_set (true: the champion "
    "was fitted on this patient, so the prediction is in-sample).",
)
def subtype_predictions(
    context: dg.AssetExecutionContext, config: PredictionsSettings, mlflow: MlflowResource,
    radiomic_features_wide: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    if radiomic_features_wide.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: radiomic_features_wide is empty; nothing to score")
    try:
        model, champion, meta = load_champion(mlflow.store())
    except LookupError as exc:
        raise dg.Failure(description=f"{exc}; materialize subtype_classifier (and subtype_champion) first") from exc
    roi_source = check_roi_source(config.roi_source or meta.get("roi_source") or "predicted")
    wide = radiomic_features_wide
    wide = wide.loc[wide["roi_source"] == roi_source].reset_index(drop=True)
    if wide.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no radiomic features with roi_source {roi_source!r} to score")
    expected = list(model.feature_names_in_)
    with warnings_logged(context):
        X, missing, extra = align_features(wide, expected)
    if len(missing) == len(expected):
        raise dg.Failure(description=f"cohort {cohort!r}: none of the champion's {len(expected)} features is present "
                         f"(e.g. {expected[:3]}); were they extracted with other parameters?")
    with threadpool_limits(limits=1, user_api="blas"):
        proba = model.predict_proba(X)
    thresholds = meta.get("multilabel_thresholds")
    table = predictions_table(cohort, wide["patient_id"], proba, list(model.classes_), champion.version, thresholds)
    table["in_training_set"] = pd.array(in_training_set(meta, cohort, list(table["patient_id"])), dtype="boolean")
    known = table["in_training_set"].notna()
    in_sample = int(table["in_training_set"].sum()) if known.all() else None
    if in_sample:
        context.log.warning(f"cohort {cohort}: {in_sample} of {len(table)} patients were in the champion's training set; "
                            "their predictions are in-sample (optimistic), not an estimate of accuracy")
    return dg.Output(
        table,
        metadata={
            "patients": len(table),
            "model_version": champion.version,
            "model_uri": f"models:/{MODEL_NAME}/{champion.version}",
            "model_run_id": champion.run_id,
            "mlflow_model_version": model_version_url(MODEL_NAME, champion.version),
            "in_training_set": in_sample if in_sample is not None else "unknown (model logged without its training rows)",
            "out_of_sample": len(table) - in_sample if in_sample is not None else "unknown",
            "trust": ("all out-of-sample" if in_sample == 0 else "unknown" if in_sample is None
                      else f"{in_sample} of {len(table)} predictions are IN-SAMPLE: the champion was fitted on these "
                      "patients; do not read them as accuracy"),
            "roi_source": roi_source,
            "predicted_counts": dg.MetadataValue.json(table["predicted_subtype"].value_counts().astype(int).to_dict()),
            "missing_features": len(missing),
            "missing_feature_names": dg.MetadataValue.json(missing[:200]),
            "extra_features": len(extra),
            "extra_feature_names": dg.MetadataValue.json(extra[:200]),
        },
    )
