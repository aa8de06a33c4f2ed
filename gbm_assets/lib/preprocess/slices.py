"""Training slices for the 2D models: slice selection, patient-level splits, memory-mapped arrays.

Arrays written by `write_slice_arrays` into one folder:
    <input>_x.npy   (N, C, H, W) float32, one per name in `INPUTS` (C = len(INPUTS[name]))
    y.npy           (N, H, W) uint8 canonical labels (consumers derive whole tumour as y > 0)
Row r of every array is the same axial slice; H runs along RAS X (left->right), W along Y
(posterior->anterior). Open them with `numpy.load(path, mmap_mode="r")`.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES
from gbm_assets.lib.preprocess.volumes import NativeTransform, PreprocessedPatient, load_preprocessed

INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"t1": ("t1",), "t2": ("t2",), "flair": ("flair",), "t1c": ("t1c",), "stack": ("t1", "t2", "flair")}
)
"""2D model input name -> channels; `stack` is the study's 3-channel T1/T2/FLAIR input."""

SPLITS: tuple[str, ...] = ("train", "validation", "test")
INDEX_COLUMNS = ("cohort", "patient_id", "slice", "row", "lesion_area_mm2", "split")


@dataclass(frozen=True)
class SliceConfig:
    """Which slices and inputs `write_slice_arrays` writes.

    Attributes:
        lesion_free_fraction: share of lesion-free brain slices kept per patient (0..1).
        seed: seeds each patient's slice draw (combined with cohort and patient id, so the draw
            does not depend on the order patients arrive in).
        inputs: names from `INPUTS` to write; a patient lacking any of their sequences is skipped.
    """

    lesion_free_fraction: float = 0.2
    seed: int = 0
    inputs: tuple[str, ...] = tuple(INPUTS)

    def __post_init__(self) -> None:
        if not 0 <= self.lesion_free_fraction <= 1:
            raise ValueError(f"lesion_free_fraction must be in [0, 1], got {self.lesion_free_fraction}")
        unknown = [i for i in self.inputs if i not in INPUTS]
        if unknown or not self.inputs:
            raise ValueError(f"unknown or no inputs {unknown}; known: {', '.join(INPUTS)}")


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


def _known(subtype) -> bool:
    return subtype is not None and not (isinstance(subtype, float) and np.isnan(subtype)) and str(subtype).strip() != ""


def patient_splits(
    patient_ids: Sequence, subtypes: Sequence | Mapping | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0,
) -> dict:
    """Assign each patient to train / validation / test, stratified by subtype.

    Patients of each subtype (unknown = None/NaN/"" forms one more stratum) are shuffled with
    `seed` and split floor(n_k x fraction) per split; leftovers go to the split furthest below its
    cohort-wide target. Each split gets >= 1 patient; a subtype with >= 2 patients (default
    fractions) keeps >= 1 in train. Deterministic in (ids, subtypes, seed), not in input order.

    Args:
        patient_ids: unique ids. subtypes: aligned sequence, id -> subtype mapping, or None.
    Raises:
        ValueError: fewer than 3 patients (one per split is impossible), duplicate ids, bad fractions.
    """
    ids = list(patient_ids)
    if len(ids) < 3:
        raise ValueError(f"patient_splits needs at least 3 patients (one each for {', '.join(SPLITS)}); got {len(ids)}")
    if len(set(ids)) != len(ids):
        raise ValueError("patient_ids must be unique")
    f = np.asarray(fractions, float)
    if f.shape != (3,) or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    if subtypes is None:
        subs = [None] * len(ids)
    elif isinstance(subtypes, Mapping):
        subs = [subtypes.get(p) for p in ids]
    else:
        subs = list(subtypes)
        if len(subs) != len(ids):
            raise ValueError(f"{len(subs)} subtypes for {len(ids)} patients")
    strata: dict[tuple[int, str], list] = {}
    for p, s in zip(ids, subs):
        strata.setdefault((0, str(s).strip()) if _known(s) else (1, ""), []).append(p)

    n = len(ids)
    targets = np.floor(n * f).astype(int)
    for s in np.argsort(-(n * f - targets), kind="stable")[: n - targets.sum()]:
        targets[s] += 1
    rng = np.random.default_rng(seed)
    split_of: dict = {}
    counts = np.zeros(3, int)
    leftovers = []
    for key in sorted(strata):
        members = sorted(strata[key], key=str)
        members = [members[i] for i in rng.permutation(len(members))]
        base = np.floor(len(members) * f).astype(int)
        pos = 0
        for s in range(3):
            for p in members[pos: pos + base[s]]:
                split_of[p] = s
            pos += base[s]
        counts += base
        leftovers.append((members[pos:], len(members) * f - base))
    for members, remainder in leftovers:
        for p in members:
            s = max(range(3), key=lambda s: (targets[s] - counts[s], remainder[s], -s))
            split_of[p], counts[s], remainder[s] = s, counts[s] + 1, remainder[s] - 1
    for s in range(3):  # tiny cohorts: make every split non-empty
        if counts[s] == 0:
            donor = int(np.argmax(counts))
            in_donor = {k: [p for p in v if split_of[p] == donor] for k, v in sorted(strata.items())}
            p = max(in_donor.values(), key=len)[-1]  # from the stratum most present in the donor
            split_of[p], counts[donor], counts[s] = s, counts[donor] - 1, 1
    return {p: SPLITS[split_of[p]] for p in ids}


def assert_disjoint_splits(index_df: pd.DataFrame) -> list:
    """Patient ids (sorted) that appear in more than one split; [] when disjoint or empty.

    Grouped by patient_id alone, so the same patient in two cohorts is caught too.
    """
    if index_df.empty:
        return []
    nsplits = index_df.groupby("patient_id")["split"].nunique()
    return sorted(nsplits[nsplits > 1].index.tolist(), key=str)


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
    read = lambda name: np.asarray(nib.load(str(folder / f"{name}.nii.gz")).dataobj)  # noqa: E731
    labels = read("labels").astype(np.uint8) if (folder / "labels.nii.gz").exists() else None
    sequences = tuple(s for s in SEQUENCES if (folder / f"{s}.nii.gz").exists())
    return labels, read("brain").astype(bool), sequences, transform.resampled_spacing


def write_slice_arrays(
    out_dir: Path,
    patients: Iterable[tuple[str, str, PreprocessedPatient | Path, str]],
    config: SliceConfig = SliceConfig(),
) -> SliceArrays:
    """Write the slice arrays (see module docstring) and return their index.

    Two passes: the first reads only labels and brain masks to choose slices and count rows, the
    second fills arrays opened with `numpy.lib.format.open_memmap`, one patient at a time. Pass a
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
    needed = [s for s in SEQUENCES if any(s in INPUTS[i] for i in config.inputs)]
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
    shapes = {f"{i}_x.npy": ((n, len(INPUTS[i]), h, w), np.float32) for i in config.inputs}
    shapes["y.npy"] = ((n, h, w), np.uint8)
    tmp = {name: out_dir / f".{uuid.uuid4().hex}.{name}" for name in shapes}
    try:
        arrays = {name: np.lib.format.open_memmap(tmp[name], mode="w+", dtype=dt, shape=sh) for name, (sh, dt) in shapes.items()}
        row = 0
        for plan in plans:
            patient = plan.source if isinstance(plan.source, PreprocessedPatient) else load_preprocessed(plan.source)
            rows = slice(row, row + plan.z.size)
            for i in config.inputs:
                channels = [patient.sequences.index(s) for s in INPUTS[i]]
                arrays[f"{i}_x.npy"][rows] = patient.images[channels][..., plan.z].transpose(3, 0, 1, 2)
            arrays["y.npy"][rows] = patient.labels[..., plan.z].transpose(2, 0, 1)
            row += plan.z.size
        for name, arr in arrays.items():
            arr.flush()
        del arrays
        for name in shapes:
            os.replace(tmp[name], out_dir / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)

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
