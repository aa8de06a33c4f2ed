"""Preprocessed volumes, training slices and the subject-level training splits through Dagster."""

import numpy as np
import pytest

from gbm_assets.lib.preprocess.splits import subject_split
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import read_parquet
from gbm_assets_tests.conftest import (
    add_cohort,
    check_evaluation,
    failure_message,
    materialize,
    metadata,
)
from gbm_assets_tests.factories import write_brats_cohort, write_brats_patient

SMALL = {"preprocessed_volumes": {"config": {"size": 16}}}
PREPARE = ["raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"]


def test_cohort_without_lesion_slices_is_refused(data_root, instance):
    cohort = write_brats_cohort(DataRoot(data_root).cohorts_dir / "clean", patients=3, shape=(16, 16, 8), labels=np.zeros((16, 16, 8), np.uint8))
    assert (cohort / "P000" / "P000_seg.nii.gz").exists()
    add_cohort(instance, "clean")
    result = materialize(data_root, PREPARE, "clean", instance=instance, run_config=SMALL, raise_on_error=False)
    assert "cohort 'clean'" in failure_message(result) and "no lesion-bearing slices" in failure_message(result)


def test_patient_missing_an_expected_sequence_is_excluded_and_others_preprocess(data_root, instance):
    cohort = write_brats_cohort(DataRoot(data_root).cohorts_dir / "gap", patients=3, shape=(16, 16, 8))
    (cohort / "P001" / "P001_flair.nii.gz").unlink()
    (cohort / "cohort.yaml").write_text("expected_sequences: [t1, t1c, t2, flair]\n")
    add_cohort(instance, "gap")
    result = materialize(data_root, ["raw_cohort", "preprocessed_volumes"], "gap", instance=instance, run_config=SMALL)
    meta = metadata(result, "preprocessed_volumes")
    assert meta["preprocessed"] == 2 and meta["failed"] == 0  # P001 was excluded upstream


def test_a_patient_failing_preprocessing_is_recorded_and_others_proceed(data_root, instance):
    cohort = write_brats_cohort(DataRoot(data_root).cohorts_dir / "bad", patients=3, shape=(16, 16, 8))
    add_cohort(instance, "bad")
    materialize(data_root, ["raw_cohort"], "bad", instance=instance)
    (cohort / "P002" / "P002_t1.nii.gz").write_bytes(b"not a nifti any more")  # breaks after validation
    result = materialize(data_root, ["preprocessed_volumes"], "bad", instance=instance, run_config=SMALL)
    table = read_parquet(DataRoot(data_root).table_file("preprocessed_volumes", "bad"))
    assert table["patient_id"].tolist() == ["P000", "P001", "P002"]
    bad = table.set_index("patient_id").loc["P002"]
    assert bad["status"] == "excluded" and "preprocessing failed" in bad["problems"]
    assert metadata(result, "preprocessed_volumes")["preprocessed"] == 2


def _two_cohorts_sharing_subjects(root: DataRoot, instance, n: int = 6) -> list[str]:
    """Cohort 'a' (P000..) and cohort 'b' holding the same images under other patient ids (Q000..),
    both prepared with seed 0; returns the subject ids."""
    write_brats_cohort(root.cohorts_dir / "a", patients=n, shape=(16, 16, 8))
    for i in range(n):
        write_brats_patient(root.cohorts_dir / "b", f"Q{i:03d}", shape=(16, 16, 8), seed=i)
    add_cohort(instance, "a", "b")
    for cohort in ("a", "b"):
        materialize(root.root, PREPARE, cohort, instance=instance, run_config=SMALL)
    subjects = read_parquet(root.table_file("raw_cohort", "a"))["subject_id"].tolist()
    assert subjects == read_parquet(root.table_file("raw_cohort", "b"))["subject_id"].tolist()  # same images, same subjects
    return subjects


def _resplit_b_to_conflict(root: DataRoot, instance, subjects: list[str]) -> list[str]:
    """Re-materialize b's training_slices with a seed that moves some subject; returns the moved subjects."""
    seed = next(s for s in range(1, 50) if any(subject_split(x, seed=s) != subject_split(x, seed=0) for x in subjects))
    materialize(root.root, ["training_slices"], "b", instance=instance, run_config={"training_slices": {"config": {"seed": seed}}})
    return [x for x in subjects if subject_split(x, seed=seed) != subject_split(x, seed=0)]


@pytest.mark.slow
def test_one_subject_under_two_cohorts_gets_one_split_and_a_conflict_fails_the_check(data_root, instance):
    root = DataRoot(data_root)
    subjects = _two_cohorts_sharing_subjects(root, instance)
    result = materialize(data_root, ["training_splits"], instance=instance)
    assert check_evaluation(result, "training_splits_subjects_in_one_split").passed
    splits = read_parquet(root.table_file("training_splits", "all"))
    assert list(splits.columns) == ["cohort", "patient_id", "subject_id", "split"] and len(splits) == 12
    assert (splits.groupby("subject_id")["split"].nunique() == 1).all()  # same seed: same split whatever the cohort

    moved = _resplit_b_to_conflict(root, instance, subjects)
    result = materialize(data_root, ["training_splits"], instance=instance, raise_on_error=False)
    check = check_evaluation(result, "training_splits_subjects_in_one_split")
    assert not check.passed and check.metadata["subjects_in_several_splits"].value == len(moved)
    pid = splits[(splits["cohort"] == "a") & splits["subject_id"].isin(moved)]["patient_id"].iloc[0]
    assert f"a/{pid}" in check.description and f"b/Q{pid[1:]}" in check.description  # both patients named

    # run on its own (where no blocking check guards it), unet_model refuses the leaking table too
    alone = materialize(data_root, ["unet_model"], "t1", instance=instance, raise_on_error=False)
    assert "puts a subject in two splits" in failure_message(alone) and f"a/{pid}" in failure_message(alone)
    assert not alone.asset_materializations_for_node("unet_model")


@pytest.mark.slow
def test_a_failing_split_check_blocks_unet_model_in_the_same_run(data_root, instance):
    root = DataRoot(data_root)
    moved = _resplit_b_to_conflict(root, instance, _two_cohorts_sharing_subjects(root, instance))
    assert moved
    blocked = materialize(data_root, ["training_splits", "unet_model"], "t1", instance=instance, raise_on_error=False)
    assert not check_evaluation(blocked, "training_splits_subjects_in_one_split").passed
    assert "blocking asset check failed" in failure_message(blocked)
    assert not blocked.asset_materializations_for_node("unet_model")


def test_training_splits_without_any_training_slices_says_what_to_do(data_root, instance):
    result = materialize(data_root, ["training_splits"], instance=instance, raise_on_error=False)
    assert "materialize training_slices" in failure_message(result)
