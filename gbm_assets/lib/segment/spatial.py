"""Random in-plane affine augmentation of training batches: zoom and rotation, images and labels together.

Phantoms come on one grid (1.5 mm, 128 x 128 in make demo), so without it a network learns one scale of tumour and
brain: the same real case preprocessed at 1 mm instead of 1.5 mm is segmented differently. nnU-Net draws zoom
0.7-1.4 and rotation per sample by default; SynthSeg's generator deforms every label map before it draws
intensities. Here each slice, with probability `p`, is zoomed by a log-uniform factor in [1 / `zoom`, `zoom`]
(about its centre) and rotated by U(-`rotate_deg`, `rotate_deg`); images resample bilinearly, labels by nearest
neighbour; what comes from outside the slice is 0 (background in every scaling). Pure torch, no Dagster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpatialConfig:
    p: float = 0.5
    zoom: float = 1.4
    rotate_deg: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {self.p}")
        if self.zoom < 1.0:
            raise ValueError(f"zoom must be >= 1 (the largest factor either way), got {self.zoom}")
        if not 0.0 <= self.rotate_deg <= 180.0:
            raise ValueError(f"rotate_deg must lie in [0, 180], got {self.rotate_deg}")


def affine_draws(rng: np.random.Generator, n: int, config: SpatialConfig = SpatialConfig()) -> np.ndarray:
    """(n, 2, 3) float32 sampling matrices for `F.affine_grid`: identity for slices not drawn. A matrix maps output
    coordinates to input ones, so a zoom factor s > 1 (tumour appears larger) samples the input at 1 / s."""
    chosen = rng.random(n) < config.p
    zoom = np.exp(rng.uniform(-math.log(config.zoom), math.log(config.zoom), n))
    angle = np.deg2rad(rng.uniform(-config.rotate_deg, config.rotate_deg, n))
    zoom, angle = np.where(chosen, zoom, 1.0), np.where(chosen, angle, 0.0)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    return theta


def random_affine(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator,
                  config: SpatialConfig = SpatialConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, C, H, W) images, y (N, H, W) or (N, 1, H, W) labels (any dtype): both moved by one random affine per
    slice (`affine_draws`); y keeps its shape and dtype."""
    n = x.shape[0]
    theta = torch.from_numpy(affine_draws(rng, n, config)).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)
    labels = y if y.ndim == 4 else y[:, None]
    moved_labels = F.grid_sample(labels.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    moved_labels = moved_labels.round().to(y.dtype)
    return moved, moved_labels if y.ndim == 4 else moved_labels[:, 0]
