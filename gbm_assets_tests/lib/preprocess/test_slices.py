"""Training slices: selection, memory-mapped arrays and their index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.contract import MODEL_INPUTS as INPUTS
from gbm_assets.lib.preprocess.slices import (
    SliceConfig,
    select_slices,
    write_slice_arrays,
)
from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    load_preprocessed,
    preprocess_patient,
    save_preprocessed,
)
from gbm_assets_tests.lib.preprocess import LAS_ANISO, RAS_1MM, synthetic_case


def test_select_slices_takes_every_lesion_slice_and_the_fraction_of_brain_slices():
    labels = np.zeros((8, 8, 16), np.uint8)
    labels[2:4, 2:4, 5:8] = 2
    brain = np.zeros(labels.shape, bool)
    brain[1:7, 1:7, 1:13] = True  # brain slices 1..12; 9 of them lesion-free
    z = select_slices(labels, 1 / 3, np.random.default_rng(0), brain)
    assert set(range(5, 8)) <= set(z.tolist())
    free = sorted(set(z.tolist()) - {5, 6, 7})
    assert len(free) == 3 and all(1 <= f <= 12 for f in free)
    assert np.array_equal(z, np.sort(z)) and z.dtype == np.int64
    np.testing.assert_array_equal(z, select_slices(labels, 1 / 3, np.random.default_rng(0), brain))
    np.testing.assert_array_equal(select_slices(labels, 0.0, np.random.default_rng(0), brain), [5, 6, 7])
    np.testing.assert_array_equal(select_slices(labels, 1.0, np.random.default_rng(0), brain), np.arange(1, 13))
    assert select_slices(np.zeros_like(labels), 1.0, np.random.default_rng(0), np.zeros_like(brain)).size == 0
    with pytest.raises(ValueError):
        select_slices(labels, 1.5, np.random.default_rng(0), brain)


@pytest.fixture
def patients(tmp_path):
    cfg = PreprocessConfig(size=32)
    a = preprocess_patient(*synthetic_case((40, 40, 10), RAS_1MM, seed=1), cfg)
    b_images, b_labels = synthetic_case((70, 60, 8), LAS_ANISO, seed=2)
    b_dir = save_preprocessed(preprocess_patient(b_images, b_labels, cfg), tmp_path / "b")
    c_images, c_labels = synthetic_case((40, 40, 6), RAS_1MM, seed=3, sequences=("t1", "t1c", "t2"))
    no_flair = preprocess_patient(c_images, c_labels, cfg)
    no_labels = preprocess_patient(synthetic_case((40, 40, 6), RAS_1MM, seed=4)[0], None, cfg)
    return [("c1", "A", a, "train"), ("c1", "B", b_dir, "test"), ("c1", "C", no_flair, "train"),
            ("c2", "D", no_labels, "validation")]


def test_write_slice_arrays_shapes_and_index(tmp_path, patients):
    out = tmp_path / "slices"
    index, skipped = write_slice_arrays(out, patients, SliceConfig(lesion_free_fraction=0.5, seed=3))
    assert dict(skipped) == {"C": "missing sequences: flair", "D": "no labels"}
    assert list(index.columns) == ["cohort", "patient_id", "slice", "row", "lesion_area_mm2", "split"]
    n = len(index)
    assert n > 0 and index["row"].tolist() == list(range(n))
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{i}_x.npy" for i in INPUTS] + ["y.npy"])
    arrays = {i: np.load(out / f"{i}_x.npy", mmap_mode="r") for i in INPUTS}
    y = np.load(out / "y.npy", mmap_mode="r")
    assert isinstance(y, np.memmap) and y.shape == (n, 32, 32) and y.dtype == np.uint8
    for name, arr in arrays.items():
        assert isinstance(arr, np.memmap) and arr.shape == (n, len(INPUTS[name]), 32, 32) and arr.dtype == np.float32

    by_id = {"A": patients[0][2], "B": load_preprocessed(patients[1][2])}
    for pid, patient in by_id.items():
        rows = index[index["patient_id"] == pid]
        lesion_z = np.flatnonzero((patient.labels > 0).any(axis=(0, 1)))
        assert set(lesion_z) <= set(rows["slice"])  # every lesion slice is there
        assert (rows["split"] == {"A": "train", "B": "test"}[pid]).all()
        for r, z, area in rows[["row", "slice", "lesion_area_mm2"]].itertuples(index=False):
            np.testing.assert_array_equal(y[r], patient.labels[:, :, z])
            np.testing.assert_array_equal(arrays["flair"][r, 0], patient.images[patient.sequences.index("flair"), :, :, z])
            stack = [patient.images[patient.sequences.index(s), :, :, z] for s in ("t1", "t2", "flair")]
            np.testing.assert_array_equal(arrays["stack"][r], np.stack(stack))
            every = [patient.images[patient.sequences.index(s), :, :, z] for s in ("t1", "t1c", "t2", "flair")]
            np.testing.assert_array_equal(arrays["all"][r], np.stack(every))  # `all`: T1, T1c, T2, FLAIR as four channels
            sx, sy, _ = patient.spacing
            assert area == pytest.approx((patient.labels[:, :, z] > 0).sum() * sx * sy)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    assert arrays["all"].shape[1] == 4 and set(np.unique(y)) == {0, 1, 2, 3}  # canonical labels, not a binary mask

    again, _ = write_slice_arrays(tmp_path / "again", patients, SliceConfig(lesion_free_fraction=0.5, seed=3))
    pd.testing.assert_frame_equal(again, index)


def test_write_slice_arrays_with_no_usable_patient(tmp_path, patients):
    index, skipped = write_slice_arrays(tmp_path / "empty", patients[2:], SliceConfig(inputs=("stack",)))
    assert index.empty and len(skipped) == 2
    assert np.load(tmp_path / "empty" / "stack_x.npy").shape == (0, 3, 0, 0)
    assert not (tmp_path / "empty" / "t1_x.npy").exists()


def test_write_slice_arrays_rejects_duplicates_and_unknown_splits(tmp_path, patients):
    with pytest.raises(ValueError, match="twice"):
        write_slice_arrays(tmp_path / "dup", [patients[0], patients[0]])
    with pytest.raises(ValueError, match="unknown split"):
        write_slice_arrays(tmp_path / "bad", [("c1", "A", patients[0][2], "holdout")])
