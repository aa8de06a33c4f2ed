"""subtype_predictions: the champion classifier applied to one cohort's wide radiomic features."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.common import score
from gbm_assets.defs.classify.config import PredictionsSettings, check_roi_source
from gbm_assets.defs.conditions import EAGER_EXCEPT_MODELS
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.classify.registry import load_champion
from gbm_assets.lib.classify.tables import predictions_table
from gbm_assets.lib.classify.targets import SUBTYPE


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
    thresholds = meta.get("multilabel_thresholds")

    def make_table(patient_ids, proba, classes):
        return predictions_table(cohort, patient_ids, proba, classes, champion.version, thresholds)

    table, info = score(context, mlflow, SUBTYPE, radiomic_features_wide, roi_source, model, champion, meta, make_table)
    return dg.Output(table, metadata=info)
