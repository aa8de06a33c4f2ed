"""Overlap of tumour regions (already in template space) with atlas structures and lobes. Pure.

Inputs are canonical label arrays resampled onto the atlas grid (`atlas.Atlas.labels`, 1 mm
isotropic, so one voxel is 0.001 mL); arrays are (Z, Y, X) as SimpleITK gives them.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from gbm_assets.lib.contract import region_mask
from gbm_assets.lib.location.atlas import LOBES, UNLABELLED, Atlas, lobe_of
from gbm_assets.lib.radiomics.burden import hemisphere

LOCATION_REGIONS: tuple[str, ...] = ("whole_tumor", "tumor_core", "enhancing")
"""Regions localised (canonical labels 1/2/3 via `contract.REGIONS`)."""

OVERLAP_COLUMNS = ["region", "level", "name", "lobe", "side", "overlap_ml", "pct_of_region"]
SUMMARY_COLUMNS = ["region", "region_ml", "dominant_lobe", "hemisphere", "centroid_x_mni", "centroid_y_mni", "centroid_z_mni"]


def structure_side(name: str) -> str:
    """'left' / 'right' from a Harvard-Oxford name's prefix; 'midline' otherwise (brain stem)."""
    return "left" if name.startswith("Left_") else "right" if name.startswith("Right_") else "midline"


def _centroid_ras(mask: np.ndarray, grid: sitk.Image) -> tuple[float, float, float]:
    zyx = np.argwhere(mask).mean(axis=0)
    lps = grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])
    return -lps[0], -lps[1], lps[2]


def region_overlap(labels: np.ndarray, atlas: Atlas) -> tuple[list[dict], list[dict]]:
    """Per region: rows per structure and per lobe overlapped, and one summary row.

    Args:
        labels: (Z, Y, X) canonical labels on `atlas.labels`' grid.

    Returns:
        (overlap rows with `OVERLAP_COLUMNS`, summary rows with `SUMMARY_COLUMNS`). `level` is
        "structure" (Harvard-Oxford name, or "unlabelled" for tumour outside every structure at
        the 25 % threshold, mostly white matter) or "lobe" (a `LOBES` name, or "unlabelled").
        pct_of_region is 100 x overlap / the region's template-space volume; the structure rows
        of a region sum to 100, as do its lobe rows. `hemisphere` is the side of the region's
        centroid in MNI RAS (x < 0 left; within `burden.MIDLINE_MM` of x = 0 "midline").
        An empty region has region_ml 0, no overlap rows and None / NaN in the summary.
    """
    structures = sitk.GetArrayViewFromImage(atlas.labels)
    lobes = sitk.GetArrayViewFromImage(atlas.lobes)
    if labels.shape != structures.shape:
        raise ValueError(f"labels shape {labels.shape} is not the atlas grid's {structures.shape}")
    voxel_ml = float(np.prod(atlas.labels.GetSpacing())) / 1000.0
    rows, summaries = [], []
    for region in LOCATION_REGIONS:
        mask = region_mask(labels, region)
        count = int(mask.sum())
        if count == 0:
            summaries.append({"region": region, "region_ml": 0.0, "dominant_lobe": None, "hemisphere": None,
                              "centroid_x_mni": math.nan, "centroid_y_mni": math.nan, "centroid_z_mni": math.nan})
            continue  # fmt: skip
        ids, counts = np.unique(structures[mask], return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist()):
            name = atlas.names[i] if i >= 0 else UNLABELLED
            rows.append({"region": region, "level": "structure", "name": name,
                         "lobe": lobe_of(name) if i >= 0 else UNLABELLED,
                         "side": structure_side(name) if i >= 0 else None,
                         "overlap_ml": n * voxel_ml, "pct_of_region": 100.0 * n / count})  # fmt: skip
        lobe_ids, lobe_counts = np.unique(lobes[mask], return_counts=True)
        named = {(LOBES[i] if i >= 0 else UNLABELLED): n for i, n in zip(lobe_ids.tolist(), lobe_counts.tolist())}
        for name, n in named.items():
            rows.append({"region": region, "level": "lobe", "name": name, "lobe": name, "side": None,
                         "overlap_ml": n * voxel_ml, "pct_of_region": 100.0 * n / count})  # fmt: skip
        in_lobes = {k: v for k, v in named.items() if k != UNLABELLED}
        x, y, z = _centroid_ras(mask, atlas.labels)
        summaries.append({"region": region, "region_ml": count * voxel_ml,
                          "dominant_lobe": max(in_lobes, key=in_lobes.get) if in_lobes else UNLABELLED,
                          "hemisphere": hemisphere(x), "centroid_x_mni": x, "centroid_y_mni": y, "centroid_z_mni": z})  # fmt: skip
    return rows, summaries
