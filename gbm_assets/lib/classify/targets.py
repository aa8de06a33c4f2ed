"""What a classifier predicts: the Verhaak subtype, IDH status, or short survival (the notebook's groupings).

A `Target` names its classes, its MLflow registered model and how its label is read from a training
table's clinical columns (`target_labels`); patients whose label is unknown are excluded from that
target, each with its reason counted. `skip_reason` says why a target cannot be trained (one class,
too few patients) so the assets can record it instead of crashing. No Dagster.

Labels:
    subtype         the `subtype` column (Classical, Mesenchymal, Proneural, Neural).
    idh             `idh_status` mutant / wildtype; unknown IDH is excluded.
    short_survival  "short" when survival_months <= 5 with a death observed (event 1, or the event
                    unknown: the survival view's convention, said in the metadata), "long" when
                    survival_months > 5 (alive or dead, the patient outlived 5 months); unknown
                    survival, and survival <= 5 months censored (event 0: alive at last contact,
                    so short or long is unknown), are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gbm_assets.lib.classify.cv import MIN_PER_CLASS, MIN_ROWS
from gbm_assets.lib.contract import SUBTYPES

SHORT_SURVIVAL_MONTHS = 5.0
"""The notebook's split: survival <= 5 months is short."""


@dataclass(frozen=True)
class Target:
    """A classification target.

    Attributes:
        name: `subtype`, `idh` or `short_survival`; asset names are `<name>_classifier`, ...
        classes: the labels, in the order of the predictions' probability columns.
        model_name: the MLflow registered model (and experiment).
        label_column: the predictions table's predicted-label column.
    """

    name: str
    classes: tuple[str, ...]
    model_name: str
    label_column: str
    what: str

    def proba_column(self, label: str) -> str:
        """`p_<label lower-case>`, e.g. `p_mesenchymal`, `p_mutant`, `p_short`."""
        return f"p_{str(label).lower()}"


SUBTYPE = Target("subtype", tuple(SUBTYPES), "gbm-subtype-classifier", "predicted_subtype", "Verhaak subtype")
IDH = Target("idh", ("mutant", "wildtype"), "gbm-idh-classifier", "predicted_idh", "IDH status (mutant / wildtype)")
SHORT_SURVIVAL = Target("short_survival", ("short", "long"), "gbm-short-survival-classifier", "predicted_short_survival",
                        f"short survival (<= {SHORT_SURVIVAL_MONTHS:g} months) vs long")
TARGETS: dict[str, Target] = {t.name: t for t in (SUBTYPE, IDH, SHORT_SURVIVAL)}


def target_labels(table: pd.DataFrame, target: Target) -> tuple[pd.Series, dict[str, int]]:
    """Each row's label for `target` (NaN where excluded) and the excluded rows counted by reason.

    Args:
        table: a training table (`features.training_table` columns; `event` optional: absent = unknown).

    Returns:
        (labels, excluded): labels is an object Series aligned with `table`; excluded maps a reason
        to its row count (only reasons that occur). For short_survival, `assumed_deaths` counts the
        short rows whose event was unknown (kept, treated as deaths).
    """
    n = len(table)
    if target.name == "subtype":
        labels = table["subtype"].astype(object).where(table["subtype"].notna(), np.nan)
        return labels, ({"subtype unknown": int(labels.isna().sum())} if labels.isna().any() else {})
    if target.name == "idh":
        idh = table["idh_status"].astype(object) if "idh_status" in table else pd.Series([np.nan] * n, index=table.index)
        labels = idh.where(idh.isin(target.classes), np.nan)
        return labels, ({"IDH status unknown": int(labels.isna().sum())} if labels.isna().any() else {})
    if target.name == "short_survival":
        months = pd.to_numeric(table.get("survival_months", pd.Series(np.nan, index=table.index)), errors="coerce")
        event = pd.to_numeric(table["event"], errors="coerce") if "event" in table else pd.Series(np.nan, index=table.index)
        short, long_ = (months <= SHORT_SURVIVAL_MONTHS) & (event != 0), months > SHORT_SURVIVAL_MONTHS
        labels = pd.Series(np.where(short, "short", np.where(long_, "long", None)), index=table.index, dtype=object)
        labels = labels.where(labels.notna(), np.nan)
        excluded = {"survival unknown": int(months.isna().sum()),
                    f"censored at or before {SHORT_SURVIVAL_MONTHS:g} months": int(((months <= SHORT_SURVIVAL_MONTHS) & (event == 0)).sum()),
                    "assumed_deaths": int((short & event.isna()).sum())}  # fmt: skip
        return labels, {k: v for k, v in excluded.items() if v}
    raise ValueError(f"unknown target {target.name!r}; known: {', '.join(TARGETS)}")


def skip_reason(labels, min_per_class: int = MIN_PER_CLASS, min_rows: int = MIN_ROWS) -> str | None:
    """Why a target with these (known) labels cannot be cross-validated, or None when it can.

    One class, fewer than `min_rows` patients or a class with fewer than `min_per_class` patients
    gives a sentence naming the counts (the same limits `cv.make_splits` enforces)."""
    counts = pd.Series(np.asarray(labels, dtype=object)).dropna().value_counts()
    shown = {str(k): int(v) for k, v in counts.items()}
    if len(counts) < 2:
        return f"one class only ({shown or 'no labelled patients'}): nothing to classify"
    if counts.sum() < min_rows:
        return f"{int(counts.sum())} labelled patients {shown}; cross-validation needs at least {min_rows}"
    if counts.min() < min_per_class:
        return f"too few patients per class {shown}; each class needs at least {min_per_class}"
    return None
