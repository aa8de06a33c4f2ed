"""The IDH and short-survival classifiers: one asset factory per target, the subtype classifier's recipe.

For each target in `TARGET_NAMES` (see `lib.classify.targets`): `<t>_classifier` (leak-free repeated CV of
the same four models, calibration, permutation importance, a new version of `gbm-<t>-classifier` in MLflow),
the blocking checks `<t>_classifier_beats_majority_baseline` and `<t>_classifier_beats_champion`,
`<t>_champion` (moves the alias) and `<t>_predictions` per cohort (with `in_training_set`). All read the
shared `target_training_table`; each keeps the patients whose label it knows (the others are counted
by reason in the metadata).

A target with one class or too few patients per class is SKIPPED, never a crash: the classifier table
holds one row with `status = skipped` and the reason, the checks pass saying so, the champion does not
move, and predictions without any champion are an empty table whose metadata gives the reason.
"""

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.classify.common import (
    champion_check,
    majority_check,
    promote,
    score,
    train_and_log,
)
from gbm_assets.defs.classify.config import (
    ClassifierSettings,
    PredictionsSettings,
    check_roi_source,
)
from gbm_assets.defs.conditions import EAGER_EXCEPT_MODELS
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.lib.classify.registry import champion, load_champion
from gbm_assets.lib.classify.tables import target_predictions_table
from gbm_assets.lib.classify.targets import (
    IDH,
    SHORT_SURVIVAL,
    Target,
    skip_reason,
    target_labels,
)

TABLE = "target_training_table"


def labelled(table: pd.DataFrame, target: Target) -> tuple[pd.DataFrame, pd.Series, dict[str, int]]:
    """The rows of `table` with a known label for `target`, their labels, and the exclusions by reason."""
    labels, excluded = target_labels(table, target)
    keep = labels.notna().to_numpy()
    return table.loc[keep].reset_index(drop=True), labels[keep].reset_index(drop=True), excluded


def skipped_table(reason: str, n_patients: int) -> pd.DataFrame:
    """The classifier table of a skipped target: one row saying why (nothing registered)."""
    return pd.DataFrame([{"model": "mlp", "accuracy": np.nan, "balanced_accuracy": np.nan, "macro_f1": np.nan,
                          "registered": False, "n_patients": n_patients, "mlflow_run_id": "", "model_version": "",
                          "status": "skipped", "skip_reason": reason}])


def classifier_assets(target: Target) -> list:
    """`<t>_classifier`, its two blocking checks, `<t>_champion` and `<t>_predictions` for one target."""
    name = target.name
    classifier_key, champion_key = f"{name}_classifier", f"{name}_champion"

    @dg.asset(
        name=classifier_key, group_name="classify", io_manager_key="table_io_manager",
        kinds={"scikitlearn", "mlflow", "parquet"}, ins={"table": dg.AssetIn(TABLE)},
        description=f"Cross-validated MLP vs logistic regression, random forest and majority predicting {target.what} "
        f"from radiomics (target_training_table; patients with an unknown label excluded); the MLP is registered in "
        f"MLflow as a new version of {target.model_name}. One row per model; one 'skipped' row with the reason when "
        "the target has one class or too few patients per class.",
    )  # fmt: skip
    def _classifier(context: dg.AssetExecutionContext, config: ClassifierSettings, data_root: DataRootResource,
                    mlflow: MlflowResource, table: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        rows, labels, excluded = labelled(table, target)
        counts = {str(k): int(v) for k, v in labels.value_counts().items()}
        known = {"label_counts": dg.MetadataValue.json(counts), "excluded": dg.MetadataValue.json(excluded),
                 "patients_in_table": len(table)}
        reason = skip_reason(labels)
        if reason:
            context.log.warning(f"{classifier_key}: skipped: {reason}")
            return dg.Output(skipped_table(reason, len(rows)),
                             metadata={"skipped": reason, "patients": len(rows), **known})
        out, meta = train_and_log(context, target, config, data_root, mlflow, rows, labels)
        return dg.Output(out.assign(status="ok", skip_reason=""), metadata={**meta, **known})

    @dg.asset_check(asset=classifier_key, name=f"{classifier_key}_beats_majority_baseline", blocking=True,
                    description=f"The MLP's cross-validated balanced accuracy beats the majority's (blocks {champion_key}); "
                    "a skipped classifier passes, saying why.")
    def _beats_majority(classifier: pd.DataFrame) -> dg.AssetCheckResult:
        return majority_check(classifier)

    @dg.asset_check(asset=classifier_key, name=f"{classifier_key}_beats_champion", blocking=True,
                    additional_ins={"table": dg.AssetIn(TABLE)},
                    description=f"The new MLP's mean per-fold CV balanced accuracy strictly beats the current {name} "
                    f"champion's on the same folds (blocks {champion_key}). Passes when there is no champion yet.")
    def _beats_champion(mlflow: MlflowResource, classifier: pd.DataFrame, table: pd.DataFrame) -> dg.AssetCheckResult:
        rows, labels, _ = labelled(table, target)
        return champion_check(mlflow, target, classifier, rows, labels, TABLE)

    @dg.asset(
        name=champion_key, group_name="classify", io_manager_key="table_io_manager", kinds={"mlflow", "parquet"},
        ins={"classifier": dg.AssetIn(classifier_key)},
        description=f"Moves the champion alias of {target.model_name} to the version {classifier_key} registered. Runs "
        f"only when {classifier_key}_beats_majority_baseline and {classifier_key}_beats_champion passed; a skipped "
        "classifier moves nothing (promoted false, skip_reason).",
    )  # fmt: skip
    def _champion(context: dg.AssetExecutionContext, mlflow: MlflowResource, classifier: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        return promote(context, mlflow, target, classifier)

    @dg.asset(
        name=f"{name}_predictions", automation_condition=EAGER_EXCEPT_MODELS, partitions_def=cohorts_partitions,
        group_name="classify", io_manager_key="table_io_manager", kinds={"parquet", "mlflow"},
        ins={"radiomic_features_wide": dg.AssetIn()}, deps=[champion_key],
        description=f"The {name} champion applied to the cohort: per patient, {target.label_column}, the probability of "
        f"each class ({', '.join(target.classes)}), the model version and in_training_set. Empty, with the reason in "
        "the metadata, while there is no champion (the classifier skipped or never promoted).",
    )  # fmt: skip
    def _predictions(context: dg.AssetExecutionContext, config: PredictionsSettings, mlflow: MlflowResource,
                     radiomic_features_wide: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        cohort = context.partition_key
        if radiomic_features_wide.empty:
            raise dg.Failure(description=f"cohort {cohort!r}: radiomic_features_wide is empty; nothing to score")
        if champion(mlflow.store(), target.model_name) is None:
            reason = (f"no champion of {target.model_name}: {classifier_key} was skipped, blocked by its checks, or "
                      "not trained yet (see its latest materialization)")
            context.log.warning(f"cohort {cohort}: {name}_predictions empty: {reason}")
            empty = target_predictions_table(target, cohort, [], np.zeros((0, len(target.classes))), list(target.classes), "")
            empty["in_training_set"] = pd.array([], dtype="boolean")
            return dg.Output(empty, metadata={"patients": 0, "skipped": reason})
        model, current, meta = load_champion(mlflow.store(), target.model_name)
        roi_source = check_roi_source(config.roi_source or meta.get("roi_source") or "predicted")

        def make_table(patient_ids, proba, classes):
            return target_predictions_table(target, cohort, patient_ids, proba, classes, current.version)

        table, info = score(context, mlflow, target, radiomic_features_wide, roi_source, model, current, meta, make_table)
        return dg.Output(table, metadata=info)

    return [_classifier, _beats_majority, _beats_champion, _champion, _predictions]


TARGET_NAMES = (IDH.name, SHORT_SURVIVAL.name)
defs_list = [d for t in (IDH, SHORT_SURVIVAL) for d in classifier_assets(t)]
