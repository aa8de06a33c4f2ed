"""Training slices of one model input for a list of patients, split by split, read lazily.

Reads what the `training_slices` asset wrote under the data root:
`volumes/training_slices/<cohort>/<input>_x.npy`, `y.npy` (canonical labels 0-3) and the Parquet index. Nothing but
the index is loaded up front: each split is a `SliceRows` view, an index of (cohort file, row)
pairs whose rows are read from disk when a batch asks for them. Memory therefore stays at a few
batches whatever the number of patients (issue 10); the old eager copy needed every slice of
every cohort in RAM, twice at the concatenation.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gbm_assets.lib.contract import REGIONS
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import read_parquet

CHUNK_ROWS = 512
"""Rows per read when a whole view is scanned (`iter_chunks`, `np.asarray(view)`)."""


def _close_all(fds: dict[int, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


class SliceRows:
    """Rows of several .npy files seen as one (N, ...) array; rows are read only when indexed.

    Row i of the view is row `rows[k][j]` of file k, files in the given order. Indexing with an
    int, a slice, a bool mask or an int array (any order) returns a fresh numpy array: float32
    for `kind="x"`, bool (label > 0, whole tumour) for `kind="y"`, as the eager loader returned,
    and the stored uint8 canonical labels (0-3) for `kind="labels"` (region models, randomisation). Headers are
    read with `np.load(mmap_mode="r")`; rows are read with positional reads (`os.preadv`) into
    the output, so the process never maps the files: touched pages of a memmap count in its RSS,
    while the kernel's page cache does not. Open descriptors are per process and not pickled,
    so a view travels to DataLoader workers (fork or spawn) and reopens its files there.

    Raises (at construction):
        ValueError: files whose trailing shapes differ (e.g. cohorts of another in-plane size),
            or a file that is not C-ordered (the message names the files).
    """

    def __init__(self, parts: Sequence[tuple[Path, np.ndarray]], kind: str = "x"):
        if kind not in ("x", "y", "labels"):
            raise ValueError(f"kind must be 'x', 'y' or 'labels', got {kind!r}")
        self.kind, self.paths = kind, [Path(p) for p, _ in parts]
        self.rows = [np.asarray(r, dtype=np.int64) for _, r in parts]
        self._offsets, self._file_dtype, tail = [], None, None
        for path, rows in zip(self.paths, self.rows):
            header = np.load(path, mmap_mode="r")
            if header.ndim < 1 or not header.flags.c_contiguous:
                raise ValueError(f"{path}: expected a C-ordered (N, ...) array")
            if tail is not None and (header.shape[1:], header.dtype) != (tail, self._file_dtype):
                raise ValueError(f"{path} holds rows of shape {header.shape[1:]} ({header.dtype}); "
                                 f"{self.paths[0]} holds {tail} ({self._file_dtype}): cohorts must share one in-plane size")  # fmt: skip
            if rows.size and (rows.min() < 0 or rows.max() >= header.shape[0]):
                raise ValueError(f"{path} has {header.shape[0]} rows; the index asks for row {int(rows.max())}")
            tail, self._file_dtype = header.shape[1:], header.dtype
            self._offsets.append(int(header.offset))
            del header  # unmapped: only the header was needed
        self._starts = np.cumsum([0] + [len(r) for r in self.rows])
        self.shape = (int(self._starts[-1]), *(tail or (0,)))
        self.dtype = np.dtype({"x": np.float32, "y": bool}.get(kind, self._file_dtype or np.uint8))
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * (self._file_dtype or np.dtype(np.uint8)).itemsize
        self._fds: dict[int, int] = {}
        weakref.finalize(self, _close_all, self._fds)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_fds"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._fds = {}
        weakref.finalize(self, _close_all, self._fds)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def _positions(self, key) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(*key.indices(n), dtype=np.int64)
        pos = np.asarray(key)
        if pos.dtype == bool:
            if pos.shape != (n,):
                raise IndexError(f"boolean index of shape {pos.shape} for {n} rows")
            return np.flatnonzero(pos)
        if pos.ndim != 1 or (pos.size and not np.issubdtype(pos.dtype, np.integer)):
            raise IndexError(f"index rows with an int, a slice, a bool mask or a 1-D int array, got {key!r:.80}")
        pos = pos.astype(np.int64)
        if pos.size and (pos.min() < -n or pos.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return np.where(pos < 0, pos + n, pos)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then numpy indexing of the gathered rows
            return self[key[0]][(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        pos = self._positions(key)
        raw = np.empty((len(pos), *self.shape[1:]), self._file_dtype or np.uint8)
        part = np.searchsorted(self._starts, pos, side="right") - 1
        for k in np.unique(part):
            at = np.flatnonzero(part == k)
            self._read(int(k), self.rows[k][pos[at] - self._starts[k]], raw, at)
        if self.kind == "labels":
            return raw
        return raw > 0 if self.kind == "y" else np.asarray(raw, dtype=np.float32)

    def _read(self, k: int, file_rows: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        fd = self._fds.get(k)
        if fd is None:
            fd = self._fds[k] = os.open(self.paths[k], os.O_RDONLY)
        for row, dest in zip(file_rows.tolist(), at.tolist()):
            got = os.preadv(fd, [memoryview(out[dest:dest + 1]).cast("B")], self._offsets[k] + row * self._row_bytes)
            if got != self._row_bytes:
                raise OSError(f"{self.paths[k]}: row {row} is truncated ({got} of {self._row_bytes} bytes)")


def iter_chunks(rows: SliceRows | np.ndarray, chunk: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Consecutive blocks of `chunk` rows (a full scan in bounded memory)."""
    for start in range(0, len(rows), chunk):
        yield rows[start:start + chunk]


@dataclass
class SliceData:
    """Slices of one input, per split.

    Attributes:
        x: split -> (N, C, H, W) float32 inputs, a lazy `SliceRows` view (indexing reads rows).
        y: split -> (N, H, W) bool whole-tumour masks, likewise; uint8 canonical labels when loaded
            with `labels=True`.
        index: split -> DataFrame (cohort, patient_id, slice, row, lesion_area_mm2, split), row-aligned.
    A split without rows is absent from the three dicts.
    """

    x: dict[str, SliceRows] = field(default_factory=dict)
    y: dict[str, SliceRows] = field(default_factory=dict)
    index: dict[str, pd.DataFrame] = field(default_factory=dict)
    excluded: list[tuple[str, str, str]] = field(default_factory=list)
    """(cohort, patient_id, reason) of patients `require_regions` left out."""


def label_regions(index: pd.DataFrame) -> dict[tuple[str, str], tuple[str, ...]]:
    """(cohort, patient_id) -> the regions the patient's truth carries (`training_slices`' `label_regions`,
    from its label scheme). An index written before the column existed (or a row without it) carries every region."""
    if "label_regions" not in index:
        return {(c, p): tuple(REGIONS) for c, p in index[["cohort", "patient_id"]].drop_duplicates().itertuples(index=False)}
    rows = index[["cohort", "patient_id", "label_regions"]].drop_duplicates(["cohort", "patient_id"])
    return {(c, p): tuple(str(r).split(",")) if isinstance(r, str) and r else tuple(REGIONS) for c, p, r in rows.itertuples(index=False)}


def load_slice_data(root: DataRoot, patients: pd.DataFrame, input_name: str, splits: Sequence[str] = ("train", "validation"),
                    labels: bool = False, require_regions: Sequence[str] = ()) -> SliceData:
    """The slices of `patients` (columns cohort, patient_id, split), in the requested splits, as lazy views.

    `labels`: y holds the canonical labels (region models, domain randomisation) instead of the
    whole-tumour mask (label > 0, the binary models' target; the same bytes are read either way).
    `require_regions`: keep only patients whose truth carries all of these regions (`label_regions`): a
    region model must not learn "no tumour core" from a binary whole-tumour mask. The others are listed in
    `SliceData.excluded` with the reason.

    The split comes from `patients` (the `training_splits` table), not from the cohort's index.
    Order: cohorts sorted by name, then the cohort's array rows in order (as `training_slices`
    wrote them). Only the Parquet indexes are read here. An empty `patients` gives an empty SliceData.

    Raises:
        FileNotFoundError: a cohort's arrays or index are missing (the message names the file).
        ValueError: cohorts whose slices differ in shape (the message names the files).
    """
    parts: dict[str, list] = {s: [] for s in splits}
    data = SliceData()
    wanted = patients[patients["split"].isin(list(splits))]
    for cohort in sorted(set(wanted["cohort"])):
        split_of = wanted[wanted["cohort"] == cohort].set_index("patient_id")["split"]
        index_path = root.table_file("training_slices", cohort)
        folder = root.volume_dir("training_slices", cohort)
        x_path, y_path = folder / f"{input_name}_x.npy", folder / "y.npy"
        for path in (index_path, x_path, y_path):
            if not path.is_file():
                raise FileNotFoundError(f"cohort {cohort}: {path} is missing; re-materialize training_slices")
        index = read_parquet(index_path)
        index = index[index["patient_id"].isin(split_of.index)]
        if require_regions:
            carried = label_regions(index)
            lacking = {p: [m for m in require_regions if m not in r] for (_, p), r in carried.items() if not set(require_regions) <= set(r)}
            data.excluded += [(cohort, p, f"truth labels lack {', '.join(m)} (label scheme regions: {', '.join(carried[(cohort, p)])})")
                              for p, m in sorted(lacking.items())]  # fmt: skip
            index = index[~index["patient_id"].isin(list(lacking))]
        index = index.assign(split=index["patient_id"].map(split_of))
        for split in splits:
            rows = index[index["split"] == split].sort_values("row")
            if not rows.empty:
                parts[split].append((x_path, y_path, rows.reset_index(drop=True)))
    for split, chunks in parts.items():
        if chunks:
            data.x[split] = SliceRows([(x, c["row"].to_numpy()) for x, _, c in chunks], "x")
            data.y[split] = SliceRows([(y, c["row"].to_numpy()) for _, y, c in chunks], "labels" if labels else "y")
            data.index[split] = pd.concat([c for _, _, c in chunks], ignore_index=True)
    return data


def require_trainable(data: SliceData, min_slices: int = 2) -> None:
    """Raise ValueError unless train and validation hold >= `min_slices` slices each and train has lesion pixels.

    The lesion scan reads the training masks in chunks and stops at the first lesion pixel."""
    for split in ("train", "validation"):
        n = len(data.x[split]) if split in data.x else 0
        if n < min_slices:
            raise ValueError(f"the {split} split has {n} slices; need at least {min_slices}")
    if not any(chunk.any() for chunk in iter_chunks(data.y["train"])):
        raise ValueError("the training slices contain no lesion pixels")
