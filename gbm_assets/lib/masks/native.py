"""Write a predicted mask on the patient's native grid, so it overlays its source voxel for voxel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gbm_assets.lib.preprocess.grid import NativeTransform, to_native
from gbm_assets.lib.preprocess.volumes import save_nifti


def save_native_mask(mask_preprocessed: np.ndarray, transform: NativeTransform, path: Path) -> np.ndarray:
    """Map a (X, Y, Z) preprocessed-grid mask to native voxels and write it as uint8 NIfTI.

    The file carries the native affine as both qform and sform (code 1, scanner), so ITK-SNAP and
    3D Slicer overlay it on the source images. Written atomically. Returns the native array.
    """
    native = to_native(mask_preprocessed.astype(np.uint8), transform)
    img = nib.Nifti1Image(native, np.asarray(transform.native_affine, dtype=float))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    save_nifti(Path(path), img)
    return native
