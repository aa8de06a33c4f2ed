"""Volume preprocessing: canonical RAS, resampling, in-plane crop/pad and intensity normalisation.

Three layers, as in nnU-Net's preprocessor:
- arrays only: intensity scaling (`normalize`, `normalize_percentile`) in `intensity.py`, geometry
  (`reorient_to_ras`, `resample`, `crop_or_pad`, `NativeTransform`, `to_native`) in `grid.py`, both re-exported here;
- images in memory: `preprocess_patient` (nibabel images -> `PreprocessedPatient`); `read_case` reads
  a patient's files and converts its labels to canonical;
- disk: `save_preprocessed` / `load_preprocessed` (`<seq>.nii.gz`, `labels.nii.gz`, `brain.nii.gz`,
  `transform.json`, `intensity.json` in one folder).

Axes: volumes are (X, Y, Z) in RAS voxel order (X left->right, Y posterior->anterior, Z inferior->
superior); images are stacked (C, X, Y, Z) in `contract.SEQUENCES` order. Spacings are in mm.
Resampling works in voxel space (an oblique affine's rotation is kept in the affine, never resampled).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from gbm_assets.lib.contract import SEQUENCES, canonical_sequence, to_canonical
from gbm_assets.lib.preprocess.grid import (  # noqa: F401  (re-exported: the volume API in one place)
    NativeTransform,
    crop_or_pad,
    crop_start,
    from_ras,
    ras_shape,
    reorient_to_ras,
    resample,
    resampled_grid,
    to_native,
)
from gbm_assets.lib.preprocess.intensity import (  # noqa: F401  (normalize re-exported: the volume API in one place)
    DEFAULT_PERCENTILE_SCALED,
    INTENSITY_FILE,
    SCALERS,
    ZSCORE,
    intensity_text,
    normalize,
    read_intensity,
    scalings,
)
from gbm_assets.lib.store.files import write_atomic


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings.

    Attributes:
        target_spacing_mm: in-plane (X, Y) spacing after resampling.
        slice_thickness_mm: Z spacing after resampling; None keeps the native slice thickness.
        size: in-plane output size H = W (voxels); a multiple of 16 so a 4-level U-Net fits.
        clip_percentiles: intensity percentiles (inside the brain) clipped before scaling.
        percentile_scaled: sequences scaled by the brain's median and 99th percentile instead of z-scored
            (see `intensity.py`; FLAIR and T2 by default); the others are z-scored. () z-scores all, as the study did.
        anti_alias: low-pass each image inside the brain before resampling it to a coarser grid (`grid.anti_aliased`;
            a 512 x 512 clinical slice at 0.43 mm onto the default 1 mm). False: linear interpolation alone, as
            before (a volume on a finer or the same grid is unchanged either way).
    """

    target_spacing_mm: float = 1.0
    slice_thickness_mm: float | None = None
    size: int = 192
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    percentile_scaled: tuple[str, ...] = DEFAULT_PERCENTILE_SCALED
    anti_alias: bool = True

    def __post_init__(self) -> None:
        chosen = tuple(sorted({canonical_sequence(s) for s in self.percentile_scaled}, key=SEQUENCES.index))
        object.__setattr__(self, "percentile_scaled", chosen)  # aliases and lists (run config) -> canonical tuple
        if not self.target_spacing_mm > 0:
            raise ValueError(f"target_spacing_mm must be > 0, got {self.target_spacing_mm}")
        if self.slice_thickness_mm is not None and not self.slice_thickness_mm > 0:
            raise ValueError(f"slice_thickness_mm must be > 0 or None, got {self.slice_thickness_mm}")
        if self.size <= 0 or self.size % 16:
            raise ValueError(f"size must be a positive multiple of 16, got {self.size}")
        lo, hi = self.clip_percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"clip_percentiles must satisfy 0 <= low < high <= 100, got {self.clip_percentiles}")


@dataclass
class PreprocessedPatient:
    """One preprocessed patient.

    Attributes:
        images: (C, X, Y, Z) float32, scaled inside `brain` (z-scored, or by percentiles: `scaling`), 0 outside.
        sequences: channel names of `images`, in `contract.SEQUENCES` order.
        labels: (X, Y, Z) uint8 canonical labels, or None when the patient has no mask.
        brain: (X, Y, Z) bool, voxels non-zero in any sequence.
        transform: the map back to the native grid.
        scaling: sequence -> its intensity scaling (`intensity.INTENSITY_SCALINGS`); None: all z-scored.
    """

    images: np.ndarray
    sequences: tuple[str, ...]
    labels: np.ndarray | None
    brain: np.ndarray
    transform: NativeTransform
    scaling: dict[str, str] | None = None

    @property
    def intensity(self) -> dict[str, str]:
        """sequence -> scaling of every channel (z-scored where `scaling` does not say)."""
        return {s: (self.scaling or {}).get(s, ZSCORE) for s in self.sequences}

    @property
    def affine(self) -> np.ndarray:
        return self.transform.affine

    @property
    def spacing(self) -> tuple[float, ...]:
        """(X, Y, Z) voxel size in mm."""
        return self.transform.resampled_spacing


# ---- images in memory --------------------------------------------------------------------------


def _volume(img: nib.Nifti1Image, name: str) -> np.ndarray:
    arr = np.asanyarray(img.dataobj)
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a 3D volume, got shape {arr.shape}")
    return arr


def preprocess_patient(
    images: Mapping[str, nib.Nifti1Image],
    labels: nib.Nifti1Image | None = None,
    config: PreprocessConfig = PreprocessConfig(),
) -> PreprocessedPatient:
    """Reorient to RAS, resample, crop/pad in-plane to config.size, scale each sequence's intensities
    (z-scored, or by percentiles for `config.percentile_scaled`).

    Output grid: (size, size, Z) at (target, target, slice thickness) mm, the in-plane window
    centred on the brain's bounding box (brain = non-zero in any sequence); tissue wider than
    size x target mm is cut. All-zero images give an empty brain, a centred window and zeros.

    Args:
        images: sequence name (or alias) -> image; all on one voxel grid (registered).
        labels: canonical uint8 labels (0..3) on the same grid, or None.

    Raises:
        ValueError: no images, a duplicate sequence, grids that differ, non-3D volumes.
        contract.LabelError: labels outside 0..3.
    """
    if not images:
        raise ValueError("preprocess_patient needs at least one image")
    named: dict[str, nib.Nifti1Image] = {}
    for key, img in images.items():
        seq = canonical_sequence(key)
        if seq in named:
            raise ValueError(f"sequence {seq!r} given twice (as {key!r})")
        named[seq] = img
    sequences = tuple(s for s in SEQUENCES if s in named)
    ref = named[sequences[0]]
    volumes = {s: _volume(named[s], s) for s in sequences}
    if labels is not None:
        volumes["labels"] = _volume(labels, "labels")
    for name, arr in volumes.items():
        img = labels if name == "labels" else named[name]
        if arr.shape != volumes[sequences[0]].shape or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise ValueError(f"{name}: grid {arr.shape} differs from {sequences[0]}'s {volumes[sequences[0]].shape} (or its affine)")

    native_shape = volumes[sequences[0]].shape
    ornt = nib.orientations.io_orientation(ref.affine)
    canon_affine = ref.affine @ nib.orientations.inv_ornt_aff(ornt, native_shape)
    canon_spacing = tuple(np.sqrt((canon_affine[:3, :3] ** 2).sum(axis=0)).tolist())
    target = (config.target_spacing_mm, config.target_spacing_mm, config.slice_thickness_mm or canon_spacing[2])
    spacing, origin, rshape = resampled_grid(ras_shape(native_shape, ornt), canon_spacing, target)

    def to_grid(arr: np.ndarray, is_label: bool) -> np.ndarray:
        ras = reorient_to_ras(arr if is_label else np.nan_to_num(arr.astype(np.float32)), ref.affine)[0]
        return resample(ras, canon_spacing, (0, 0, 0), spacing, origin, rshape, labels=is_label, anti_alias=config.anti_alias)

    resampled = np.stack([to_grid(volumes[s], False) for s in sequences])
    start = crop_start(np.any(resampled != 0, axis=0), config.size)
    shape = (config.size, config.size, rshape[2])
    cropped = crop_or_pad(resampled, start, shape)
    del resampled
    brain = np.any(cropped != 0, axis=0)
    scaling = scalings(sequences, config.percentile_scaled)
    normed = np.stack([SCALERS[scaling[s]](c, brain, config.clip_percentiles) for s, c in zip(sequences, cropped)])
    out_labels = None
    if labels is not None:
        canonical = to_canonical(volumes["labels"], "canonical", "labels")
        out_labels = crop_or_pad(to_grid(canonical, True), start, shape)
    transform = NativeTransform(
        native_shape=tuple(int(n) for n in native_shape),
        native_affine=tuple(tuple(float(v) for v in row) for row in ref.affine),
        orientation=tuple((int(a), int(f)) for a, f in ornt),
        canonical_spacing=canon_spacing, resampled_spacing=spacing, resampled_origin=origin,
        resampled_shape=rshape, crop_offset=start, shape=shape,
    )
    return PreprocessedPatient(normed, sequences, out_labels, brain, transform, scaling)


def read_case(
    image_paths: Mapping[str, os.PathLike | str],
    label_path: os.PathLike | str | None = None,
    label_scheme: str = "canonical",
) -> tuple[dict[str, nib.Nifti1Image], nib.Nifti1Image | None]:
    """Open a patient's NIfTI files; labels converted from `label_scheme` to canonical uint8.

    Raises:
        contract.LabelError: the mask holds values `label_scheme` does not define.
    """
    images = {canonical_sequence(k): nib.load(str(p)) for k, p in image_paths.items()}
    if label_path is None:
        return images, None
    lab = nib.load(str(label_path))
    arr = to_canonical(np.asanyarray(lab.dataobj), label_scheme, str(label_path))
    return images, nib.Nifti1Image(arr, lab.affine)


# ---- disk --------------------------------------------------------------------------------------


def nifti_gz_bytes(img: nib.Nifti1Image, compresslevel: int = 1) -> bytes:
    """A NIfTI image as `.nii.gz` bytes (gzip mtime 0, so equal images give equal files)."""
    return gzip.compress(img.to_bytes(), compresslevel=compresslevel, mtime=0)


def save_nifti(path: Path, img: nib.Nifti1Image) -> Path:
    """Write `img` to `path` (`.nii.gz`) atomically through `lib/store/files.write_atomic`."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(nifti_gz_bytes(img)))


def _save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    save_nifti(path, img)


def save_preprocessed(patient: PreprocessedPatient, out_dir: Path) -> Path:
    """Write `<seq>.nii.gz` (float32) per sequence, `labels.nii.gz` (uint8, when present),
    `brain.nii.gz` (uint8), `transform.json` and `intensity.json` into out_dir, each atomically; files of sequences
    or labels the patient no longer has are removed. Returns out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    affine = patient.affine
    for seq, arr in zip(patient.sequences, patient.images):
        _save_nifti(out_dir / f"{seq}.nii.gz", arr.astype(np.float32), affine)
    for stale in [s for s in SEQUENCES if s not in patient.sequences] + ([] if patient.labels is not None else ["labels"]):
        (out_dir / f"{stale}.nii.gz").unlink(missing_ok=True)
    if patient.labels is not None:
        _save_nifti(out_dir / "labels.nii.gz", patient.labels.astype(np.uint8), affine)
    _save_nifti(out_dir / "brain.nii.gz", patient.brain.astype(np.uint8), affine)
    text = json.dumps(patient.transform.to_dict(), indent=1)
    write_atomic(out_dir / "transform.json", lambda tmp: tmp.write_text(text))
    record = intensity_text(patient.intensity)
    write_atomic(out_dir / INTENSITY_FILE, lambda tmp: tmp.write_text(record))
    return out_dir


def load_preprocessed(directory: Path) -> PreprocessedPatient:
    """Read what `save_preprocessed` wrote.

    Raises:
        FileNotFoundError: no transform.json or no sequence file in the folder.
    """
    directory = Path(directory)
    transform = NativeTransform.from_dict(json.loads((directory / "transform.json").read_text()))
    sequences = tuple(s for s in SEQUENCES if (directory / f"{s}.nii.gz").exists())
    if not sequences:
        raise FileNotFoundError(f"{directory}: no sequence files ({', '.join(SEQUENCES)}).nii.gz")
    read = lambda name, dtype: np.asarray(nib.load(str(directory / f"{name}.nii.gz")).dataobj, dtype=dtype)
    images = np.stack([read(s, np.float32) for s in sequences])
    labels = read("labels", np.uint8) if (directory / "labels.nii.gz").exists() else None
    return PreprocessedPatient(images, sequences, labels, read("brain", np.uint8).astype(bool), transform, read_intensity(directory))
