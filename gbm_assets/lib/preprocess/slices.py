"""Training slices for the 2D models: slice selection and memory-mapped arrays (splits: `splits.py`).

Arrays written by `write_slice_arrays` into one folder:
    <input>_x.npy   (N, C, H, W) float32, one per name in `MODEL_INPUTS` (lib/contract) (C = len(MODEL_INPUTS[name]))
    y.npy           (N, H, W) uint8 canonical labels (consumers derive whole tumour as y > 0)
Row r of every array is the same axial slice; H runs along RAS X (left->right), W along Y
(posterior->anterior). Open them with `numpy.load(path, mmap_mode="r")`.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import MODEL_INPUTS, SEQUENCES
from gbm_assets.lib.preprocess.splits import SPLITS
from gbm_assets.lib.preprocess.volumes import (
    NativeTransform,
    PreprocessedPatient,
    load_preprocessed,
)
from gbm_assets.lib.store.files import write_atomic

INDEX_COLUMNS = ("cohort", "patient_id", "slice", "row", "lesion_area_mm2", "split")


@dataclass(frozen=True)
class SliceConfig:
    """Which slices and inputs `write_slice_arrays` writes.

    Attributes:
        lesion_free_fraction: share of lesion-free brain slices kept per patient (0..1).
        seed: seeds each patient's slice draw (combined with cohort and patient id, so the draw
            does not depend on the order patients arrive in).
        inputs: names from `MODEL_INPUTS` (lib/contract) to write; a patient lacking any of their sequences is skipped.
    """

    lesion_free_fraction: float = 0.2
    seed: int = 0
    inputs: tuple[str, ...] = tuple(MODEL_INPUTS)

    def __post_init__(self) -> None:
        if not 0 <= self.lesion_free_fraction <= 1:
            raise ValueError(f"lesion_free_fraction must be in [0, 1], got {self.lesion_free_fraction}")
        unknown = [i for i in self.inputs if i not in MODEL_INPUTS]
        if unknown or not self.inputs:
            raise ValueError(f"unknown or no inputs {unknown}; known: {', '.join(MODEL_INPUTS)}")


class SliceArrays(NamedTuple):
    """What `write_slice_arrays` returns: the row index and the (patient_id, reason) skipped."""

    index: pd.DataFrame
    skipped: list[tuple[str, str]]


def select_slices(
    labels: np.ndarray, lesion_free_fraction: float, rng: np.random.Generator, brain: np.ndarray | None = None
) -> np.ndarray:
    """Axial (z) indices to train on: every slice with a label > 0, plus round(fraction x n) of the
    n lesion-free slices that hold brain (all lesion-free slices when `brain` is None).

    Args:
        labels: (X, Y, Z) canonical labels. brain: (X, Y, Z) bool or None.
    Returns:
        sorted int64 z indices; empty when there is neither lesion nor brain.
    """
    if labels.ndim != 3 or (brain is not None and brain.shape != labels.shape):
        raise ValueError(f"labels must be (X, Y, Z) and brain the same shape; got {labels.shape}, "
                         f"{None if brain is None else brain.shape}")
    if not 0 <= lesion_free_fraction <= 1:
        raise ValueError(f"lesion_free_fraction must be in [0, 1], got {lesion_free_fraction}")
    lesion = (labels > 0).any(axis=(0, 1))
    free = ~lesion if brain is None else ~lesion & brain.any(axis=(0, 1))
    free_z = np.flatnonzero(free)
    k = int(np.floor(lesion_free_fraction * free_z.size + 0.5))
    chosen = rng.choice(free_z, size=k, replace=False) if k else np.empty(0, np.int64)
    return np.sort(np.concatenate([np.flatnonzero(lesion), chosen])).astype(np.int64)


# ---- arrays on disk ----------------------------------------------------------------------------


@dataclass
class _Plan:
    cohort: str
    patient_id: str
    source: PreprocessedPatient | Path
    split: str
    z: np.ndarray
    area_mm2: np.ndarray


def _peek(source: PreprocessedPatient | Path):
    """(labels, brain, sequences, spacing) without loading images when source is a folder."""
    if isinstance(source, PreprocessedPatient):
        return source.labels, source.brain, source.sequences, source.spacing
    folder = Path(source)
    transform = NativeTransform.from_dict(json.loads((folder / "transform.json").read_text()))
    read = lambda name: np.asarray(nib.load(str(folder / f"{name}.nii.gz")).dataobj)
    labels = read("labels").astype(np.uint8) if (folder / "labels.nii.gz").exists() else None
    sequences = tuple(s for s in SEQUENCES if (folder / f"{s}.nii.gz").exists())
    return labels, read("brain").astype(bool), sequences, transform.resampled_spacing


def _write_all_atomic(out_dir: Path, names: list[str], fill, tmp: dict[str, Path] | None = None) -> None:
    """Nested `write_atomic`s: `fill({name: temp path})` writes every file, and only then is each
    renamed into place (any failure removes every temp file and leaves the old files)."""
    tmp = {} if tmp is None else tmp
    if len(tmp) == len(names):
        fill(tmp)
        return
    name = names[len(tmp)]
    write_atomic(out_dir / name, lambda path: _write_all_atomic(out_dir, names, fill, {**tmp, name: path}))


def _pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def write_slice_arrays(
    out_dir: Path,
    patients: Iterable[tuple[str, str, PreprocessedPatient | Path, str]],
    config: SliceConfig = SliceConfig(),
) -> SliceArrays:
    """Write the slice arrays (see module docstring) and return their index.

    Two passes: the first reads only labels and brain masks to choose slices and count rows, the
    second writes each patient's rows at their offsets in files laid out by
    `numpy.lib.format.open_memmap`, one patient at a time (memory: one patient). Pass a
    folder written by `save_preprocessed` as the patient to keep the cohort out of memory. Each
    array is written under a temporary name and moved into place when complete.

    Args:
        patients: (cohort, patient_id, PreprocessedPatient or its folder, split) tuples.
    Returns:
        SliceArrays(index, skipped). index has one row per array row: cohort, patient_id, slice
        (z index), row, lesion_area_mm2 (whole tumour pixels x in-plane spacing), split. skipped
        lists (patient_id, reason) for patients with no labels, a missing sequence needed by
        `config.inputs`, an in-plane size different from the first patient's, or no slices. With
        no rows the arrays are written with N = 0 (and H = W = 0 when no patient qualified).
    Raises:
        ValueError: an unknown split, or the same (cohort, patient_id) twice.
    """
    needed = [s for s in SEQUENCES if any(s in MODEL_INPUTS[i] for i in config.inputs)]
    plans: list[_Plan] = []
    skipped: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    hw: tuple[int, int] | None = None
    for cohort, pid, source, split in patients:
        if split not in SPLITS:
            raise ValueError(f"{pid}: unknown split {split!r}; expected one of {SPLITS}")
        if (cohort, pid) in seen:
            raise ValueError(f"patient {cohort}/{pid} given twice")
        seen.add((cohort, pid))
        labels, brain, sequences, spacing = _peek(source)
        missing = [s for s in needed if s not in sequences]
        if missing:
            skipped.append((pid, f"missing sequences: {', '.join(missing)}"))
            continue
        if labels is None:
            skipped.append((pid, "no labels"))
            continue
        if hw is not None and labels.shape[:2] != hw:
            skipped.append((pid, f"in-plane size {labels.shape[:2]} != {hw}"))
            continue
        rng = np.random.default_rng([config.seed, zlib.crc32(f"{cohort}/{pid}".encode())])
        z = select_slices(labels, config.lesion_free_fraction, rng, brain)
        if z.size == 0:
            skipped.append((pid, "no slices: no lesion and no brain"))
            continue
        hw = hw or labels.shape[:2]
        area = (labels[:, :, z] > 0).sum(axis=(0, 1)) * float(spacing[0]) * float(spacing[1])
        plans.append(_Plan(cohort, pid, source, split, z, area))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, (h, w) = sum(p.z.size for p in plans), hw or (0, 0)
    shapes = {f"{i}_x.npy": ((n, len(MODEL_INPUTS[i]), h, w), np.float32) for i in config.inputs}
    shapes["y.npy"] = ((n, h, w), np.uint8)

    def fill(tmp: dict[str, Path]) -> None:
        # open_memmap writes each header and sizes the file; rows then go in with positional writes,
        # so written pages sit in the kernel's cache, not in this process's RSS (a written page of a
        # mapping stays resident in it): memory stays one patient whatever the cohort size
        offsets = {}
        for name, (sh, dt) in shapes.items():
            header = np.lib.format.open_memmap(tmp[name], mode="w+", dtype=dt, shape=sh)
            offsets[name] = int(header.offset)
            del header
        fds = {name: os.open(tmp[name], os.O_WRONLY) for name in shapes}
        try:
            row = 0
            for plan in plans:
                patient = plan.source if isinstance(plan.source, PreprocessedPatient) else load_preprocessed(plan.source)
                blocks = {f"{i}_x.npy": patient.images[[patient.sequences.index(s) for s in MODEL_INPUTS[i]]][..., plan.z].transpose(3, 0, 1, 2)
                          for i in config.inputs}  # fmt: skip
                blocks["y.npy"] = patient.labels[..., plan.z].transpose(2, 0, 1)
                for name, block in blocks.items():
                    sh, dt = shapes[name]
                    _pwrite_all(fds[name], np.ascontiguousarray(block, dtype=dt), offsets[name] + row * int(np.prod(sh[1:])) * np.dtype(dt).itemsize)
                row += plan.z.size
            for fd in fds.values():
                os.fsync(fd)  # as the memmap's flush did: on disk before the rename
        finally:
            for fd in fds.values():
                os.close(fd)

    _write_all_atomic(out_dir, list(shapes), fill)

    index = pd.DataFrame(
        {
            "cohort": [p.cohort for p in plans for _ in p.z],
            "patient_id": [p.patient_id for p in plans for _ in p.z],
            "slice": np.concatenate([p.z for p in plans]) if plans else np.empty(0, np.int64),
            "row": np.arange(n, dtype=np.int64),
            "lesion_area_mm2": np.concatenate([p.area_mm2 for p in plans]) if plans else np.empty(0, float),
            "split": [p.split for p in plans for _ in p.z],
        },
        columns=list(INDEX_COLUMNS),
    )
    return SliceArrays(index, skipped)
