"""A picture of a tumour over the MNI152 template: three orthogonal planes through its centroid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from gbm_assets.lib.store.figures import figure_png

_COLOURS = ListedColormap([(0, 0, 0, 0), (0.95, 0.85, 0.1, 0.7), (0.2, 0.6, 1.0, 0.55), (0.95, 0.15, 0.15, 0.8)])
"""Canonical labels 0..3: transparent, necrotic core yellow, edema blue, enhancing red."""


def location_png(template: sitk.Image, labels: np.ndarray, title: str, dpi: int = 60) -> bytes:
    """PNG bytes: axial, coronal and sagittal planes through the tumour's centroid (or the grid's centre).

    Args:
        template: the template resampled onto the labels' grid (any scalar pixel type).
        labels: (Z, Y, X) canonical labels on that grid.
    """
    t = sitk.GetArrayViewFromImage(template).astype(np.float32)
    if t.shape != labels.shape:
        raise ValueError(f"template {t.shape} and labels {labels.shape} are not on one grid")
    tumour = np.argwhere(labels > 0)
    z, y, x = (tumour.mean(axis=0) if len(tumour) else np.array(labels.shape) / 2).astype(int)
    # On the atlas grid, index x runs right -> left, y posterior -> anterior, z inferior -> superior:
    # rows are flipped so anterior / superior are up; the patient's right is on the left (radiological).
    planes = [("axial", t[z][::-1], labels[z][::-1]), ("coronal", t[:, y, :][::-1], labels[:, y, :][::-1]),
              ("sagittal", t[:, :, x][::-1], labels[:, :, x][::-1])]  # fmt: skip
    fig = Figure(figsize=(7.5, 2.8))
    vmax = float(np.percentile(t[t > 0], 99)) if (t > 0).any() else 1.0
    for k, (name, image, mask) in enumerate(planes):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax.imshow(np.ma.masked_equal(mask, 0), cmap=_COLOURS, vmin=0, vmax=3, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return figure_png(fig, dpi=dpi)
