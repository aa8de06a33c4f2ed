"""The in-plane grid a U-Net learnt on, and inference on that grid whatever the patient's.

A 2D U-Net learns tumours and brains at one size in pixels. Make demo's `all` champion, given its own test
patients upsampled from the 1.5 mm grid it learnt on to a 1 mm one, loses whole-tumour Dice 0.897 -> 0.794; a
cohort dropped into the inbox is preprocessed at the platform's default 1 mm. So, as nnU-Net's plans carry a
target spacing, each checkpoint records the in-plane voxel size of its training patients (`common_spacing`), and
`on_model_grid` resamples a patient's slices to it before the network and the probabilities back after
(bilinear both ways; zero padding, background in every intensity scaling, up to the network's multiple of 16).
A patient already on the model's grid, or a checkpoint written before the record, is predicted as it is.
Pure (no Dagster).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from gbm_assets.lib.preprocess.volumes import NativeTransform

GRID_TOLERANCE = 0.01
"""Relative difference of in-plane voxel sizes below which two grids count as the same."""
MULTIPLE = 16
"""The U-Net's four poolings need H and W divisible by 16."""


def folder_spacing(folder: str | Path) -> float:
    """In-plane voxel size (mm) of a preprocessed patient's folder, from its `transform.json`."""
    transform = NativeTransform.from_dict(json.loads((Path(folder) / "transform.json").read_text()))
    return in_plane(transform.resampled_spacing)


def in_plane(spacing) -> float:
    """The in-plane voxel size of an (X, Y, Z) spacing; preprocessing resamples X and Y alike."""
    return float(np.mean([float(spacing[0]), float(spacing[1])]))


def same_grid(a: float, b: float) -> bool:
    return abs(a - b) <= GRID_TOLERANCE * max(a, b)


def common_spacing(spacings: Mapping[str, float]) -> float | None:
    """The one in-plane voxel size of a model's training patients (label -> mm); None for no patient.

    Raises:
        ValueError: they differ (names one patient of each grid and the setting that decides it)."""
    grids: dict[float, str] = {}
    for label, value in spacings.items():
        if not any(same_grid(value, seen) for seen in grids):
            grids[value] = label
    if len(grids) > 1:
        shown = "; ".join(f"{label}: {value:g} mm" for value, label in grids.items())
        raise ValueError(f"training patients were preprocessed on {len(grids)} different in-plane grids ({shown}); "
                         "a model learns one: preprocess its cohorts with one preprocessed_volumes target_spacing_mm")
    return next(iter(grids), None)


def model_grid_shape(shape: tuple[int, int], spacing: float, model_spacing: float) -> tuple[int, int]:
    """(X, Y) of a slice of `shape` at `spacing` mm resampled to `model_spacing` mm (same field of view)."""
    return tuple(max(1, round(n * spacing / model_spacing)) for n in shape)


def on_model_grid(predict: Callable[[np.ndarray], np.ndarray], slices: np.ndarray, spacing: float,
                  model_spacing: float | None) -> np.ndarray:
    """`predict` (N, C, H, W) -> (N, H, W) or (N, R, H, W) probabilities, run on `slices` resampled from `spacing`
    to `model_spacing` mm in plane; the probabilities come back on the slices' own grid. Without a model
    spacing, or on the same grid, `predict(slices)` unchanged."""
    if model_spacing is None or same_grid(spacing, model_spacing):
        return predict(slices)
    import torch
    import torch.nn.functional as F

    shape = tuple(slices.shape[-2:])
    size = model_grid_shape(shape, spacing, model_spacing)
    moved = F.interpolate(torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32)), size=size, mode="bilinear",
                          align_corners=False, antialias=size[0] < shape[0])  # fmt: skip
    pads = [(-n % MULTIPLE) for n in size]
    before = [p // 2 for p in pads]
    moved = F.pad(moved, (before[1], pads[1] - before[1], before[0], pads[0] - before[0]))
    prob = torch.from_numpy(np.asarray(predict(moved.numpy()), dtype=np.float32))
    flat = prob.ndim == 3
    prob = prob[:, None] if flat else prob
    prob = prob[..., before[0]:before[0] + size[0], before[1]:before[1] + size[1]]
    back = F.interpolate(prob, size=shape, mode="bilinear", align_corners=False).clamp_(0.0, 1.0).numpy()
    return back[:, 0] if flat else back
