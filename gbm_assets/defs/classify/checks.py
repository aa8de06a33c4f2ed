"""Checks on the classify assets. Named as predicates; expected and actual values in metadata.

The two checks on `subtype_classifier` are BLOCKING: when either fails, `subtype_champion` (which
moves the registry's champion alias) does not run, so a worse model never becomes champion.
Both read the version the run produced from the `subtype_classifier` table itself.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.classify.cv import MIN_PER_CLASS
from gbm_assets.lib.classify.gate import beats_champion, champion_on_folds
from gbm_assets.lib.classify.registry import champion
from gbm_assets.lib.classify.tables import registered_row, training_matrix
from gbm_assets.lib.contract import SUBTYPES


@dg.asset_check(asset="subtype_training_table", description=f"Every subtype has at least {MIN_PER_CLASS} labelled patients.")
def subtype_training_table_covers_every_subtype(subtype_training_table: pd.DataFrame) -> dg.AssetCheckResult:
    counts = subtype_training_table["subtype"].value_counts()
    actual = {s: int(counts.get(s, 0)) for s in SUBTYPES}
    return dg.AssetCheckResult(
        passed=min(actual.values()) >= MIN_PER_CLASS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"partition": "unpartitioned (every labelled cohort)", "expected_min_per_subtype": MIN_PER_CLASS,
                  "subtype_counts": dg.MetadataValue.json(actual),
                  "failing_subtypes": dg.MetadataValue.json([s for s, n in actual.items() if n < MIN_PER_CLASS])},
    )


@dg.asset_check(asset="subtype_classifier", blocking=True,
                description="The MLP's cross-validated balanced accuracy beats the majority's (blocks subtype_champion).")
def subtype_classifier_beats_majority_baseline(subtype_classifier: pd.DataFrame) -> dg.AssetCheckResult:
    by_model = subtype_classifier.set_index("model")["balanced_accuracy"]
    mlp, majority = float(by_model.get("mlp", np.nan)), float(by_model.get("majority", np.nan))
    return dg.AssetCheckResult(
        passed=bool(mlp > majority),  # NaN (a model not cross-validated) fails
        metadata={"partition": "unpartitioned", "failed_value": f"mlp {mlp:.3f} vs majority {majority:.3f}",
                  "expected": f"mlp > majority ({majority:.3f})", "mlp_balanced_accuracy": mlp,
                  "majority_balanced_accuracy": majority, "margin": mlp - majority},
    )


@dg.asset_check(
    asset="subtype_classifier",
    blocking=True,
    additional_ins={"subtype_training_table": dg.AssetIn()},
    description="The new MLP's mean per-fold CV balanced accuracy strictly beats the current champion's on the "
    "same folds (blocks subtype_champion). Passes when there is no champion yet.",
)
def subtype_classifier_beats_champion(
    mlflow: MlflowResource, subtype_classifier: pd.DataFrame, subtype_training_table: pd.DataFrame
) -> dg.AssetCheckResult:
    """Paired per-fold comparison. If the champion's run cross-validated exactly these folds (same
    patients, labels, fold count and split seed: equal fold fingerprints), its logged per-fold scores
    are used; otherwise the champion's pipeline settings (mlp, its select_k) are re-cross-validated on
    the new folds. Re-scoring the champion's saved model on the new validation folds would not do: it
    was fitted on (most of) those patients, so its scores would be inflated."""
    row = registered_row(subtype_classifier)
    candidate = [float(v) for v in json.loads(row["fold_balanced_accuracy"])]
    meta = {"partition": "unpartitioned", "candidate_version": str(row["model_version"]),
            "folds_sha256": str(row["folds_sha256"])}
    current = champion(mlflow.store())
    if current is None:
        return dg.AssetCheckResult(passed=True, metadata={**meta, "champion_version": "none",
                                                          "note": "no champion yet: the first version may become champion"})
    if current.version == meta["candidate_version"]:
        return dg.AssetCheckResult(passed=True, metadata={**meta, "champion_version": current.version,
                                                          "note": "this version is already the champion"})
    X, y = training_matrix(subtype_training_table)
    try:
        scores, method = champion_on_folds(current.fold_scores, current.folds_sha256, current.params,
                                           meta["folds_sha256"], X, y, n_splits=int(row["n_splits"]),
                                           n_repeats=int(row["n_repeats"]), seed=int(row["seed"]))
    except ValueError as exc:
        return dg.AssetCheckResult(passed=False, metadata={**meta, "champion_version": current.version, "error": str(exc)})
    passed, comparison = beats_champion(candidate, scores)
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**meta, "champion_version": current.version, "method": method,
                  "expected": f"candidate mean > champion mean ({comparison['champion_mean']:.3f})",
                  "candidate_balanced_accuracy": comparison["candidate_mean"],
                  "champion_balanced_accuracy": comparison["champion_mean"], "margin": comparison["margin"],
                  "folds": comparison["folds"], "folds_candidate_better": comparison["candidate_wins"]},
    )
