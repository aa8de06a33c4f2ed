"""Checks on the classify assets. Named as predicates; expected and actual values in metadata."""

import numpy as np
import pandas as pd
import dagster as dg

from gbm_assets.defs.classify.assets import subtype_classifier, subtype_predictions, subtype_training_table
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.lib.classify.cv import MIN_PER_CLASS
from gbm_assets.lib.classify.report import proba_column
from gbm_assets.lib.contract import SUBTYPES

SUM_TOLERANCE = 1e-6


@dg.asset_check(asset=subtype_training_table, description=f"Every subtype has at least {MIN_PER_CLASS} labelled patients.")
def subtype_training_table_covers_every_subtype(subtype_training_table: pd.DataFrame) -> dg.AssetCheckResult:
    counts = subtype_training_table["subtype"].value_counts()
    actual = {s: int(counts.get(s, 0)) for s in SUBTYPES}
    return dg.AssetCheckResult(
        passed=min(actual.values()) >= MIN_PER_CLASS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"expected_min_per_subtype": MIN_PER_CLASS, "subtype_counts": dg.MetadataValue.json(actual)},
    )


@dg.asset_check(asset=subtype_classifier, description="The MLP's cross-validated balanced accuracy beats the majority's.")
def subtype_classifier_beats_majority_baseline(subtype_classifier: pd.DataFrame) -> dg.AssetCheckResult:
    by_model = subtype_classifier.set_index("model")["balanced_accuracy"]
    mlp, majority = float(by_model.get("mlp", np.nan)), float(by_model.get("majority", np.nan))
    return dg.AssetCheckResult(
        passed=bool(mlp > majority),  # NaN (a model not cross-validated) fails
        metadata={"expected": f"mlp > majority ({majority:.3f})", "mlp_balanced_accuracy": mlp,
                  "majority_balanced_accuracy": majority, "margin": mlp - majority},
    )


@dg.asset_check(asset=subtype_predictions, partitions_def=cohorts_partitions,
                description="Each patient's four subtype probabilities lie in [0, 1] and sum to 1.")
def subtype_predictions_probabilities_sum_to_one(subtype_predictions: pd.DataFrame) -> dg.AssetCheckResult:
    P = subtype_predictions[[proba_column(s) for s in SUBTYPES]].to_numpy(dtype=float)
    error = np.abs(P.sum(axis=1) - 1.0) if len(P) else np.zeros(0)
    out_of_range = int(((P < 0) | (P > 1) | np.isnan(P)).any(axis=1).sum()) if len(P) else 0
    bad = subtype_predictions.loc[error > SUM_TOLERANCE, "patient_id"].tolist() if len(P) else []
    return dg.AssetCheckResult(
        passed=not bad and out_of_range == 0,
        metadata={"expected_max_abs_error": SUM_TOLERANCE, "max_abs_error": float(error.max()) if len(error) else 0.0,
                  "patients_off": dg.MetadataValue.json(bad[:100]), "rows_out_of_range": out_of_range},
    )
