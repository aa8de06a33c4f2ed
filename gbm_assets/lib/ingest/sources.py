"""Read any volume source a layout names as a NIfTI image in memory, and write it as NIfTI.

Sources (see `layouts.base`): a NIfTI file (nibabel); any other file SimpleITK reads (NRRD,
MetaImage, ...); a `DicomSeries` (SimpleITK's ImageSeriesReader); a `SliceStack` of 2D images
(Pillow). ITK images are in LPS; they are converted to nibabel's RAS affine exactly
(affine = diag(-1, -1, 1, 1) @ [direction x spacing | origin]), so geometry is kept.
Arrays come back (X, Y, Z), squeezed of trailing singleton axes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from gbm_assets.lib.ingest.layouts.base import DicomSeries, SliceStack, Source

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti(source: Source) -> bool:
    """True for a NIfTI file (read in place); False for sources that are converted."""
    return isinstance(source, Path) and source.name.lower().endswith(NIFTI_SUFFIXES)


def sitk_to_nifti(image) -> nib.Nifti1Image:
    """A SimpleITK image (3D, scalar) as a nibabel image with the equivalent RAS affine."""
    import SimpleITK as sitk

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"expected a 3D scalar volume, got {image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} components")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    lps[:3, 3] = image.GetOrigin()
    data = np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    img = nib.Nifti1Image(data, _LPS_TO_RAS @ lps)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    return img


def _slice_stack(stack: SliceStack) -> nib.Nifti1Image:
    from PIL import Image

    if not stack.files:
        raise ValueError("no slice files")
    planes = []
    for path in stack.files:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img)
        except Exception as exc:
            raise ValueError(f"slice {path.name}: {type(exc).__name__}: {exc}") from exc
        if stack.channel is not None:
            if arr.ndim != 3 or arr.shape[2] <= stack.channel:
                raise ValueError(f"slice {path.name}: shape {arr.shape} has no channel {stack.channel}")
            arr = arr[..., stack.channel]
        elif arr.ndim == 3:  # a mask saved as RGB: all channels alike
            arr = arr[..., 0]
        if planes and arr.shape != planes[0].shape:
            raise ValueError(f"slice {path.name}: shape {arr.shape} differs from {planes[0].shape}")
        planes.append(arr)
    # image rows run anterior -> posterior, columns right -> left: voxel (X=column, Y=row, Z=slice) is LPS
    data = np.ascontiguousarray(np.stack(planes, axis=-1).transpose(1, 0, 2))
    sx, sy, sz = stack.spacing_mm
    img = nib.Nifti1Image(data, np.diag([-sx, -sy, sz, 1.0]))
    img.header.set_xyzt_units("mm")
    return img


def load_source(source: Source) -> tuple[nib.Nifti1Image, np.ndarray]:
    """(image, fully read (X, Y, Z) array) of one source; a truncated or corrupt file raises.

    Raises:
        ValueError: not a 3D volume (4D with one volume is squeezed); any reader's error otherwise.
    """
    if isinstance(source, SliceStack):
        img = _slice_stack(source)
    elif isinstance(source, DicomSeries):
        import SimpleITK as sitk

        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(f) for f in source.files])
        img = sitk_to_nifti(reader.Execute())
    elif is_nifti(source):
        img = nib.load(str(source))
    else:
        import SimpleITK as sitk

        img = sitk_to_nifti(sitk.ReadImage(str(source)))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {data.shape}")
    if data.ndim != len(img.shape):
        img = nib.Nifti1Image(data, img.affine, img.header)
    return img, data


def write_converted(img: nib.Nifti1Image, data: np.ndarray, path: Path) -> Path:
    """Write a converted source as `.nii.gz` at `path` (atomically; qform = sform = its affine)."""
    from gbm_assets.lib.preprocess.volumes import save_nifti

    out = nib.Nifti1Image(np.asarray(data), img.affine)
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    out.header.set_xyzt_units("mm")
    return save_nifti(path, out)
