"""Checks on the classify assets. Named as predicates; expected and actual values in metadata.

The two checks on `subtype_classifier` are BLOCKING: when either fails, `subtype_champion` (which
moves the registry's champion alias) does not run, so a worse model never becomes champion.
Both read the version the run produced from the `subtype_classifier` table itself.
"""

import dagster as dg
import pandas as pd

from gbm_assets.defs.classify.common import champion_check, majority_check
from gbm_assets.defs.metadata import check_result
from gbm_assets.defs.resources import MlflowResource
from gbm_assets.lib.classify.cv import MIN_PER_CLASS
from gbm_assets.lib.classify.targets import SUBTYPE
from gbm_assets.lib.contract import SUBTYPES


@dg.asset_check(asset="subtype_training_table", description=f"Every subtype has at least {MIN_PER_CLASS} labelled patients.")
def subtype_training_table_covers_every_subtype(subtype_training_table: pd.DataFrame) -> dg.AssetCheckResult:
    counts = subtype_training_table["subtype"].value_counts()
    actual = {s: int(counts.get(s, 0)) for s in SUBTYPES}
    return check_result(
        min(actual.values()) >= MIN_PER_CLASS, min(actual.values()), f">= {MIN_PER_CLASS} labelled patients per subtype",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"cohorts": "every labelled cohort", "expected_min_per_subtype": MIN_PER_CLASS,
                  "subtype_counts": dg.MetadataValue.json(actual),
                  "failing_subtypes": dg.MetadataValue.json([s for s, n in actual.items() if n < MIN_PER_CLASS])},
    )


@dg.asset_check(asset="subtype_classifier", blocking=True,
                description="The MLP's cross-validated balanced accuracy beats the majority's (blocks subtype_champion).")
def subtype_classifier_beats_majority_baseline(subtype_classifier: pd.DataFrame) -> dg.AssetCheckResult:
    return majority_check(subtype_classifier)


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
    return champion_check(mlflow, SUBTYPE, subtype_classifier, subtype_training_table)
