"""Patient-level train / validation / test splits that follow the subject, not the cohort.

A patient's split is a function of its subject id and a seed only: a seeded SHA-256 of the
subject id gives a number u in [0, 1), mapped to train / validation / test by the fractions.
The same subject therefore lands in the same split in every cohort it appears in (no leak
from train into test across cohorts), and adding or removing other patients never moves it.

The price: splits are not stratified by subtype (balance within a cohort would depend on the
cohort's other patients, which is exactly what lets one subject move), and a small cohort can
leave a split empty; the fractions hold on average over many subjects.

The subject id is the `subject_id` column of `raw_cohort` when present (a content hash of the
patient's images, or a declared id), else `<cohort>/<patient_id>` (`subject_ids`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import pandas as pd

SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPLIT_COLUMNS = ["cohort", "patient_id", "subject_id", "split"]


def _check_fractions(fractions: tuple[float, float, float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")


def subject_unit(subject_id: str, seed: int = 0) -> float:
    """A number in [0, 1), uniform over subjects, fixed by (seed, subject_id)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def subject_split(subject_id: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0) -> str:
    """The split of one subject: train if u < f_train, validation if u < f_train + f_validation, else test.

    Raises:
        ValueError: fractions that are not 3 non-negative numbers summing to 1; an empty subject id.
    """
    _check_fractions(fractions)
    if not str(subject_id).strip():
        raise ValueError("subject_id is empty")
    u = subject_unit(str(subject_id), seed)
    return "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"


def subject_splits(subject_ids: Iterable[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0) -> dict[str, str]:
    """{subject id: split} for each id (see `subject_split`); {} for no ids."""
    return {s: subject_split(s, fractions, seed) for s in subject_ids}


def subject_ids(cohort: str, patient_ids: Iterable[str], declared: Mapping[str, object] | None = None) -> dict[str, str]:
    """{patient_id: subject id}: the declared id when given and non-empty, else `<cohort>/<patient_id>`."""
    declared = declared or {}
    out = {}
    for pid in patient_ids:
        value = declared.get(pid)
        out[pid] = str(value) if isinstance(value, str) and value.strip() else f"{cohort}/{pid}"
    return out


def subjects_in_several_splits(table: pd.DataFrame) -> pd.DataFrame:
    """The rows (SPLIT_COLUMNS) of every subject found in more than one split.

    Args:
        table: at least cohort, patient_id, subject_id, split (one row per patient, or per slice).
    Returns:
        the offending (cohort, patient_id, subject_id, split) rows, deduplicated and sorted by
        subject, cohort and patient; empty when every subject sits in one split (or no rows).
    """
    rows = table[SPLIT_COLUMNS].drop_duplicates()
    nsplits = rows.groupby("subject_id")["split"].nunique()
    leaked = rows[rows["subject_id"].isin(nsplits[nsplits > 1].index)]
    return leaked.sort_values(["subject_id", "cohort", "patient_id"], ignore_index=True)


def leak_messages(leaked: pd.DataFrame) -> list[str]:
    """One line per leaking subject naming each of its patients: "subject S: c1/P1 (train), c2/P9 (test)"."""
    return [
        f"subject {subject}: " + ", ".join(f"{r.cohort}/{r.patient_id} ({r.split})" for r in group.itertuples())
        for subject, group in leaked.groupby("subject_id", sort=True)
    ]


def split_table(indexes: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One row per (cohort, patient_id, subject_id, split) from `training_slices` indexes (one per cohort).

    An index without a `subject_id` column (written before subject ids existed) falls back to
    `<cohort>/<patient_id>`. Rows sorted by cohort, then patient; no indexes or rows give an
    empty table with SPLIT_COLUMNS.
    """
    parts = []
    for index in indexes:
        part = index.assign(subject_id=index["cohort"] + "/" + index["patient_id"]) if "subject_id" not in index else index
        parts.append(part[SPLIT_COLUMNS].drop_duplicates())
    if not parts:
        return pd.DataFrame(columns=SPLIT_COLUMNS)
    return pd.concat(parts, ignore_index=True).sort_values(["cohort", "patient_id"], ignore_index=True)
