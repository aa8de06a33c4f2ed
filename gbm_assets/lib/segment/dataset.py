"""Load training slices of one model input for a list of patients, split by split.

Reads what the `training_slices` asset wrote under the data root:
`volumes/training_slices/<cohort>/<input>_x.npy`, `y.npy` (memory-mapped) and the Parquet index.
Only the rows of the listed patients in the requested splits are copied into memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import read_parquet


@dataclass
class SliceData:
    """Slices of one input, per split.

    Attributes:
        x: split -> (N, C, H, W) float32 inputs.
        y: split -> (N, H, W) bool whole-tumour masks.
        index: split -> DataFrame (cohort, patient_id, slice, row, lesion_area_mm2, split), row-aligned.
    A split without rows is absent from the three dicts.
    """

    x: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    index: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_slice_data(root: DataRoot, patients: pd.DataFrame, input_name: str, splits: Sequence[str] = ("train", "validation")) -> SliceData:
    """The slices of `patients` (columns cohort, patient_id, split), in the requested splits.

    The split comes from `patients` (the `training_splits` table), not from the cohort's index.
    Order: cohorts sorted by name, then the cohort's array rows in order (as `training_slices`
    wrote them). An empty `patients` gives an empty SliceData.

    Raises:
        FileNotFoundError: a cohort's arrays or index are missing (the message names the file).
    """
    parts: dict[str, list] = {s: [] for s in splits}
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
        index = index.assign(split=index["patient_id"].map(split_of))
        x, y = np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
        for split in splits:
            rows = index[index["split"] == split].sort_values("row")
            if rows.empty:
                continue
            take = rows["row"].to_numpy()
            parts[split].append((np.asarray(x[take], dtype=np.float32), np.asarray(y[take]) > 0, rows.reset_index(drop=True)))
    data = SliceData()
    for split, chunks in parts.items():
        if chunks:
            data.x[split] = np.concatenate([c[0] for c in chunks])
            data.y[split] = np.concatenate([c[1] for c in chunks])
            data.index[split] = pd.concat([c[2] for c in chunks], ignore_index=True)
    return data


def require_trainable(data: SliceData, min_slices: int = 2) -> None:
    """Raise ValueError unless train and validation hold >= `min_slices` slices each and train has lesion pixels."""
    for split in ("train", "validation"):
        n = len(data.x[split]) if split in data.x else 0
        if n < min_slices:
            raise ValueError(f"the {split} split has {n} slices; need at least {min_slices}")
    if not data.y["train"].any():
        raise ValueError("the training slices contain no lesion pixels")
