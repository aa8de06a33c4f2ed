"""Subject-level splits: a seeded hash of the subject id, the same in every cohort."""

from __future__ import annotations

import pandas as pd
import pytest

from gbm_assets.lib.preprocess.splits import (
    SPLIT_COLUMNS,
    leak_messages,
    split_table,
    subject_ids,
    subject_split,
    subject_splits,
    subjects_in_several_splits,
)


def test_a_subject_gets_the_same_split_whatever_else_is_in_the_cohort():
    ids = [f"sha256:{i:016x}" for i in range(2000)]
    splits = subject_splits(ids, seed=7)
    assert subject_splits(ids[::-1], seed=7) == splits  # order does not matter
    assert subject_splits(ids[:10], seed=7) == {s: splits[s] for s in ids[:10]}  # nor the other subjects
    assert subject_splits(ids, seed=8) != splits
    share = pd.Series(splits).value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.7, abs=0.04) and share["validation"] == pytest.approx(0.15, abs=0.03)
    assert share["test"] == pytest.approx(0.15, abs=0.03)
    assert set(subject_splits(ids[:50], (1.0, 0.0, 0.0)).values()) == {"train"}
    assert set(subject_splits(ids[:50], (0.0, 0.0, 1.0)).values()) == {"test"}
    assert subject_splits([]) == {}


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)])
def test_bad_fractions_and_empty_ids_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        subject_split("s", fractions)
    with pytest.raises(ValueError, match="empty"):
        subject_split(" ")


def test_subject_ids_use_the_declared_id_else_cohort_and_patient():
    got = subject_ids("c1", ["P1", "P2", "P3"], {"P1": "sha256:ab", "P2": float("nan"), "P3": ""})
    assert got == {"P1": "sha256:ab", "P2": "c1/P2", "P3": "c1/P3"}
    assert subject_ids("c1", ["P1"]) == {"P1": "c1/P1"}


def test_a_subject_in_two_splits_is_found_with_both_patients_named():
    table = pd.DataFrame(
        [("a", "P1", "s1", "train"), ("b", "Q1", "s1", "test"), ("a", "P2", "s2", "train"), ("b", "Q2", "s2", "train"),
         ("a", "P3", "s3", "validation")],
        columns=SPLIT_COLUMNS,
    )  # fmt: skip
    leaked = subjects_in_several_splits(table)
    assert leaked[["cohort", "patient_id"]].values.tolist() == [["a", "P1"], ["b", "Q1"]]
    assert leak_messages(leaked) == ["subject s1: a/P1 (train), b/Q1 (test)"]
    assert subjects_in_several_splits(table[table["subject_id"] != "s1"]).empty
    assert leak_messages(subjects_in_several_splits(table.iloc[0:0])) == []


def test_split_table_has_one_row_per_patient_and_falls_back_to_cohort_and_patient():
    new = pd.DataFrame({"cohort": ["b"] * 3, "patient_id": ["Q1", "Q1", "Q2"], "subject_id": ["s1", "s1", "s2"],
                        "split": ["train"] * 3, "row": [0, 1, 2]})  # fmt: skip
    old = pd.DataFrame({"cohort": ["a", "a"], "patient_id": ["P1", "P1"], "split": ["test", "test"], "row": [0, 1]})
    table = split_table([new, old])
    assert table.values.tolist() == [["a", "P1", "a/P1", "test"], ["b", "Q1", "s1", "train"], ["b", "Q2", "s2", "train"]]
    assert list(split_table([]).columns) == SPLIT_COLUMNS
