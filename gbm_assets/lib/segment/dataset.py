"""Load training slices of one model input across cohorts, split by split.

Reads what the `training_slices` and `preprocessed_volumes` assets wrote under the data root:
`volumes/training_slices/<cohort>/<input>_x.npy`, `y.npy` (memory-mapped) and the Parquet index
and patient table. Only the rows of the requested splits are copied into memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from gbm_assets.lib.paths import DataRoot
from gbm_assets.lib.tables import read_parquet


@dataclass
class SliceData:
    """Slices of one input, per split.

    Attributes:
        x: split -> (N, C, H, W) float32 inputs.
        y: split -> (N, H, W) bool whole-tumour masks.
        index: split -> DataFrame (cohort, patient_id, slice, lesion_area_mm2, split), row-aligned.
        spacing: (cohort, patient_id) -> (x, y, z) preprocessed voxel size in mm.
    """

    x: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    index: dict[str, pd.DataFrame] = field(default_factory=dict)
    spacing: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)


def load_slice_data(root: DataRoot, cohorts: Sequence[str], input_name: str, splits: Sequence[str] = ("train", "validation")) -> SliceData:
    """Concatenate the requested splits of `input_name` over `cohorts`.

    Raises:
        FileNotFoundError: a cohort's arrays or tables are missing (the message names the file).
    """
    parts: dict[str, list] = {s: [] for s in splits}
    data = SliceData()
    for cohort in cohorts:
        index = read_parquet(root.table_file("training_slices", cohort))
        folder = root.volume_dir("training_slices", cohort)
        x_path, y_path = folder / f"{input_name}_x.npy", folder / "y.npy"
        for path in (x_path, y_path):
            if not path.is_file():
                raise FileNotFoundError(f"cohort {cohort}: {path} is missing; re-materialize training_slices")
        x, y = np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
        volumes = read_parquet(root.table_file("preprocessed_volumes", cohort))
        for r in volumes.itertuples():
            data.spacing[(cohort, r.patient_id)] = (r.spacing_x_mm, r.spacing_y_mm, r.spacing_z_mm)
        for split in splits:
            rows = index[index["split"] == split].sort_values("row")
            take = rows["row"].to_numpy()
            parts[split].append((np.asarray(x[take], dtype=np.float32), np.asarray(y[take]) > 0, rows.reset_index(drop=True)))
    for split, chunks in parts.items():
        if chunks:
            data.x[split] = np.concatenate([c[0] for c in chunks])
            data.y[split] = np.concatenate([c[1] for c in chunks])
            data.index[split] = pd.concat([c[2] for c in chunks], ignore_index=True)
    return data
