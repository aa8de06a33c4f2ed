"""Checks on the preprocess assets. Named as predicates."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.metadata import check_result
from gbm_assets.lib.preprocess.splits import leak_messages, subjects_in_several_splits


@dg.asset_check(
    asset="training_splits",
    blocking=True,
    description="Every subject sits in one split across all cohorts (no patient of the test split is trained on "
    "under another cohort); otherwise the U-Nets do not train.",
)
def training_splits_subjects_in_one_split(training_splits: pd.DataFrame) -> dg.AssetCheckResult:
    leaked = subjects_in_several_splits(training_splits)
    messages = leak_messages(leaked)
    return check_result(
        not messages, len(messages), "0 subjects in several splits",
        description="; ".join(messages[:20]) or None,
        metadata={"subjects_in_several_splits": len(messages), "leaks": dg.MetadataValue.json(messages[:100])},
    )
