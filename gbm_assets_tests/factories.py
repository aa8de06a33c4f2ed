"""Tiny hand-made cohorts on disk, for tests that need a specific (often broken) input.

Volumes are a few voxels wide so every test stays fast; the synthetic generator
(`gbm_assets.lib.synth.phantom`) is used where plausible anatomy matters.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

BRATS_FILES = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair"}


def tiny_labels(shape=(8, 8, 6)) -> np.ndarray:
    """BraTS-coded labels: a core (1) inside enhancing (4) inside edema (2)."""
    seg = np.zeros(shape, np.uint8)
    seg[2:6, 2:6, 1:5] = 2
    seg[3:5, 3:5, 2:4] = 4
    seg[3, 3, 2] = 1
    return seg


def save(array: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def write_brats_patient(
    cohort_dir: Path,
    patient: str,
    shape=(8, 8, 6),
    labels: np.ndarray | None | bool = True,
    affine: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """Write one BraTS-named patient with four random sequences and (optionally) a mask."""
    rng = np.random.default_rng(seed)
    folder = cohort_dir / patient
    for seq, suffix in BRATS_FILES.items():
        save(rng.normal(100, 10, shape).astype(np.float32), folder / f"{patient}_{suffix}.nii.gz", affine)
    if labels is True:
        labels = tiny_labels(shape)
    if isinstance(labels, np.ndarray):
        save(labels, folder / f"{patient}_seg.nii.gz", affine)
    return folder


def write_brats_cohort(cohort_dir: Path, patients: int = 3, **kwargs) -> Path:
    for i in range(patients):
        write_brats_patient(cohort_dir, f"P{i:03d}", seed=i, **kwargs)
    return cohort_dir


def write_clinical(cohort_dir: Path, rows: list[dict]) -> Path:
    import pandas as pd

    path = cohort_dir / "clinical.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
