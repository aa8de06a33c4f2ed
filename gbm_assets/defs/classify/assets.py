"""Classify assets, unpartitioned: the training table, the cross-validated classifier (a new MLflow
model version per materialization) and `subtype_champion`, which moves the registry's `champion`
alias to that version only after the blocking checks on `subtype_classifier` passed.

The computation lives in `gbm_assets.lib.classify`; these assets load tables, call it and record.
"""

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.common import promote, train_and_log
from gbm_assets.defs.classify.config import (
    ClassifierSettings,
    TrainingTableSettings,
    check_roi_source,
)
from gbm_assets.defs.classify.notes import warnings_logged
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.lib.classify.features import (
    CLINICAL_COLUMNS,
    feature_columns,
    training_table,
)
from gbm_assets.lib.classify.tables import labelled_rows
from gbm_assets.lib.classify.targets import IDH, SHORT_SURVIVAL, SUBTYPE, target_labels

ALL_COHORTS = dg.AllPartitionMapping()
TABLE_INS = {
    "radiomic_features_wide": dg.AssetIn(partition_mapping=ALL_COHORTS),
    "clinical_records": dg.AssetIn(partition_mapping=ALL_COHORTS),
}
"""Every cohort's features and clinical records, loaded as one input each by the table IO manager (the
cohorts that materialized them; a cohort without one, e.g. never scored, is left out)."""


def joined_table(context: dg.AssetExecutionContext, config: TrainingTableSettings, wide: pd.DataFrame,
                 clinical: pd.DataFrame, name: str, clinical_columns=CLINICAL_COLUMNS) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One ROI source's features joined with clinical rows, in the configured cohorts.

    Returns (table, cohorts that have both tables, warnings). Fails naming configured cohorts
    without a table, and when nothing is left."""
    roi_source = check_roi_source(config.roi_source)
    has = {c: set(df["cohort"]) if "cohort" in df else set() for c, df in (("wide", wide), ("clinical", clinical))}
    absent = [c for c in config.cohorts if c not in has["wide"] or c not in has["clinical"]]
    if absent:
        raise dg.Failure(
            description=f"cohorts {absent}: no radiomic_features_wide or clinical_records table; materialize them first"
        )
    cohorts = sorted((has["wide"] & has["clinical"]) & (set(config.cohorts) if config.cohorts else has["wide"]))
    if not cohorts:
        raise dg.Failure(description="no cohort has both radiomic_features_wide and clinical_records; materialize them first")
    wide = wide.loc[wide["cohort"].isin(cohorts) & (wide["roi_source"] == roi_source)].reset_index(drop=True)
    if wide.empty:
        raise dg.Failure(description=f"no radiomic features with roi_source {roi_source!r} in cohorts {cohorts}")
    labels = clinical.loc[clinical["cohort"].isin(cohorts)].reset_index(drop=True)
    if labels.empty:
        raise dg.Failure(description=f"no clinical records in cohorts {cohorts}; no labels to train on")
    with warnings_logged(context) as warned:
        try:
            table = training_table(wide, labels, roi_source, clinical_columns=clinical_columns)
        except (KeyError, ValueError) as exc:
            raise dg.Failure(description=f"{name} (cohorts {cohorts}): {exc}") from exc
    return table, cohorts, warned


@dg.asset(
    group_name="classify",
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    ins=TABLE_INS,
    description="Wide radiomic features (radiomic_features_wide) of one ROI source joined with clinical "
    "labels, every labelled cohort.",
)
def subtype_training_table(
    context: dg.AssetExecutionContext, config: TrainingTableSettings, radiomic_features_wide: pd.DataFrame,
    clinical_records: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    roi_source = config.roi_source
    table, cohorts, warned = joined_table(context, config, radiomic_features_wide, clinical_records, "subtype_training_table")
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
    kinds={"parquet"},
    ins=TABLE_INS,
    description="Wide radiomic features of one ROI source joined with every clinical column (subtype, survival, "
    "event, IDH, age) for every patient with features: the shared training table of the IDH and short-survival "
    "classifiers, each of which keeps the patients whose label it knows.",
)
def target_training_table(
    context: dg.AssetExecutionContext, config: TrainingTableSettings, radiomic_features_wide: pd.DataFrame,
    clinical_records: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    table, cohorts, warned = joined_table(context, config, radiomic_features_wide, clinical_records,
                                          "target_training_table", clinical_columns=(*CLINICAL_COLUMNS, "event"))
    feats = feature_columns(table)
    dropped = [c for c in feats if table[c].isna().all()]
    table = table.drop(columns=dropped)
    counts = {t.name: {str(k): int(v) for k, v in target_labels(table, t)[0].value_counts().items()}
              for t in (IDH, SHORT_SURVIVAL)}
    return dg.Output(
        table,
        metadata={
            "roi_source": config.roi_source,
            "cohorts": dg.MetadataValue.json(cohorts),
            "patients": len(table),
            "features": len(feature_columns(table)),
            "label_counts": dg.MetadataValue.json(counts),
            "unmatched_imaging": len(table.attrs.get("unmatched_imaging", [])),
            "dropped_all_missing_features": dg.MetadataValue.json(dropped[:200]),
            "warnings": dg.MetadataValue.json(warned[:50]),
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
    out, meta = train_and_log(context, SUBTYPE, config, data_root, mlflow, subtype_training_table)
    return dg.Output(out, metadata=meta)


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
    return promote(context, mlflow, SUBTYPE, subtype_classifier)
