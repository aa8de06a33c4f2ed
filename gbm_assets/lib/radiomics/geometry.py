"""Checks before PyRadiomics runs: readable 3D files, matching geometry, extractable intensities.

Each returns a reason (a string naming the files and values) or None, so the caller can record an
exclusion instead of raising. Arrays are in SimpleITK's (Z, Y, X) order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

MAX_GRAY_LEVELS = 1024
"""An ROI spanning more grey levels at the file's binWidth is excluded (texture matrices grow as levels^2)."""
GEOMETRY_TOLERANCE = 1e-3
"""Mask/image geometry tolerance: spacing (relative), origin (fraction of the smallest spacing), direction."""


def geometry_mismatch(image: sitk.Image, mask: sitk.Image, image_path="<image>", mask_path="<mask>") -> str | None:
    """None if mask and image share size, spacing, origin and direction (within tolerance), else why not."""
    problems = []
    if image.GetSize() != mask.GetSize():
        problems.append(f"size {mask.GetSize()} vs {image.GetSize()}")
    spacing = np.asarray(image.GetSpacing())
    if not np.allclose(mask.GetSpacing(), spacing, rtol=GEOMETRY_TOLERANCE, atol=0):
        problems.append(f"spacing {tuple(np.round(mask.GetSpacing(), 4))} vs {tuple(np.round(spacing, 4))} mm")
    if not np.allclose(mask.GetOrigin(), image.GetOrigin(), rtol=0, atol=GEOMETRY_TOLERANCE * spacing.min()):
        problems.append(f"origin {tuple(np.round(mask.GetOrigin(), 3))} vs {tuple(np.round(image.GetOrigin(), 3))} mm")
    if not np.allclose(mask.GetDirection(), image.GetDirection(), rtol=0, atol=GEOMETRY_TOLERANCE):
        theirs, ours = np.round(mask.GetDirection(), 4), np.round(image.GetDirection(), 4)
        problems.append(f"direction {tuple(theirs)} vs {tuple(ours)}")
    if not problems:
        return None
    return f"geometry mismatch: mask {mask_path} vs image {image_path}: " + "; ".join(problems)


def read_volume(path: str | Path) -> tuple[sitk.Image | None, str | None]:
    """(3D image, None) or (None, reason). A 4D file with one volume is read as 3D."""
    try:
        image = sitk.ReadImage(str(path))
        if image.GetDimension() == 4 and image.GetSize()[3] == 1:
            image = image[:, :, :, 0]
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            return None, f"{path} is not a scalar 3D volume (size {image.GetSize()})"
        return image, None
    except Exception as exc:  # SimpleITK raises RuntimeError with ITK's message
        return None, f"{path}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"


def precrop_is_exact(extractor) -> bool:
    """Cropping to the ROI before PyRadiomics leaves every feature unchanged when PyRadiomics would
    not look outside the ROI: Original image only, no normalisation (whole-image statistics), no
    resampling (the grid and interpolation depend on the surroundings)."""
    types = extractor.enabledImagetypes
    settings = extractor.settings
    return (set(types) == {"Original"} and not types["Original"] and not settings.get("normalize")
            and settings.get("resampledPixelSpacing") is None)  # fmt: skip


def intensity_problem(values: np.ndarray, settings: Mapping) -> str | None:
    """Why an ROI's intensities (1D) cannot be extracted with these settings, or None."""
    if not np.all(np.isfinite(values)):
        return f"ROI holds {int((~np.isfinite(values)).sum())} non-finite intensities"
    if settings.get("binCount") is not None or settings.get("normalize"):
        return None
    width = float(settings.get("binWidth", 25))
    levels = int(math.floor((float(values.max()) - float(values.min())) / width)) + 1
    if levels > MAX_GRAY_LEVELS:
        return (f"ROI spans {levels} grey levels at binWidth {width:g} (limit {MAX_GRAY_LEVELS}): "
                "is the image intensity-standardised as the parameter file expects?")  # fmt: skip
    return None
