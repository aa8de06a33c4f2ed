"""Register a patient's brain to the MNI152 template with SimpleITK, and map masks into template space.

The registration is template (fixed) <- patient (moving): the transform maps a template point to
the patient's physical point, so patient masks are resampled onto any template-space grid with it.

Stages (both on images resampled to `RegistrationSettings.spacing_mm` first, to stay fast):
    1. affine: a moment-based initialiser (centres of mass and principal axes of intensity), then
       an affine transform optimised for Mattes mutual information (regular-step gradient descent,
       a multi-resolution pyramid, physical-shift scaling), masked to both brains;
    2. optional deformable: a BSpline transform on a coarse control grid, composed after the affine.

Physical space is ITK's (LPS); SimpleITK reads each NIfTI's own orientation, so RAS, LAS and LPS
files all land the right way round; the moment initialiser recovers the different origin of an
atlas space such as SRI24 (BraTS) and the affine its different size and tilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class RegistrationSettings:
    """How to register. Defaults favour speed (about 2-5 s per patient on 2 cores).

    Attributes:
        deformable: add the BSpline stage after the affine one.
        spacing_mm: isotropic spacing both images are resampled to before registration.
        iterations: optimiser iterations per resolution level (affine).
        shrink_factors / smoothing_mm: the multi-resolution pyramid.
        bins: Mattes histogram bins; sampling: the fraction of voxels sampled per iteration.
        bspline_mesh: BSpline control points per axis; bspline_iterations: LBFGS-B iterations.
        seed: sampling seed (results repeat run to run).
    """

    deformable: bool = False
    spacing_mm: float = 3.0
    iterations: int = 100
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_mm: tuple[float, ...] = (3.0, 0.0)
    bins: int = 32
    sampling: float = 0.25
    bspline_mesh: int = 6
    bspline_iterations: int = 30
    seed: int = 42


DEFAULT_SETTINGS = RegistrationSettings()


@dataclass(frozen=True)
class Registration:
    """A registration's result.

    Attributes:
        transform: template point -> patient point (composite: affine, then BSpline if any).
        metric: final Mattes mutual information (negative; lower is better) of the last stage.
        brain_dice: Dice of the warped patient brain mask with the template's brain mask.
        stage: "affine" or "affine+bspline".
    """

    transform: sitk.Transform
    metric: float
    brain_dice: float
    stage: str


def resample_isotropic(image: sitk.Image, spacing_mm: float, interpolator=sitk.sitkLinear) -> sitk.Image:
    """`image` on a grid of `spacing_mm` isotropic voxels, same origin, direction and extent."""
    size = [max(1, round(n * s / spacing_mm)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), (spacing_mm,) * 3,
                         image.GetDirection(), 0.0, image.GetPixelID())  # fmt: skip


def brain_mask(image: sitk.Image) -> sitk.Image:
    """uint8 mask of the non-zero voxels (skull-stripped images are exactly 0 outside the brain)."""
    return sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)


def dice(a: sitk.Image, b: sitk.Image) -> float:
    """Dice of two binary images on the same grid (NaN if both are empty)."""
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    total = int(x.sum()) + int(y.sum())
    return float(2 * np.logical_and(x, y).sum() / total) if total else float("nan")


def warp_mask(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """A patient label/mask image resampled onto `reference`'s grid, nearest neighbour (uint8)."""
    return sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _method(settings: RegistrationSettings, fixed_mask: sitk.Image, moving_mask: sitk.Image) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricMovingMask(moving_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register_to_template(patient: sitk.Image, template: sitk.Image, settings: RegistrationSettings = DEFAULT_SETTINGS) -> Registration:
    """Register a skull-stripped patient image (any sequence) to the skull-stripped template.

    Args:
        patient: a 3D scalar image, 0 outside the brain (its brain mask is its non-zero voxels).
        template: the MNI152 brain (`atlas.load_atlas().template`).

    Raises:
        ValueError: the patient image is not 3D, or has no non-zero voxel.
        RuntimeError: SimpleITK's optimiser failed (e.g. no overlap between the images).
    """
    if patient.GetDimension() != 3 or patient.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"need a 3D scalar image, got {patient.GetDimension()}D with "
                         f"{patient.GetNumberOfComponentsPerPixel()} component(s)")  # fmt: skip
    fixed = resample_isotropic(sitk.Cast(template, sitk.sitkFloat32), settings.spacing_mm)
    moving = resample_isotropic(sitk.Cast(patient, sitk.sitkFloat32), settings.spacing_mm)
    fixed_mask, moving_mask = brain_mask(fixed), brain_mask(moving)
    if not sitk.GetArrayViewFromImage(moving_mask).any():
        raise ValueError("the image has no non-zero (brain) voxel")
    # Intensities are on arbitrary scanner scales: normalise each within its brain for MI's histogram.
    fixed, moving = _normalise(fixed, fixed_mask), _normalise(moving, moving_mask)
    initial = sitk.CenteredTransformInitializer(
        fixed_mask, moving_mask, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = _method(settings, fixed_mask, moving_mask)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=settings.iterations, relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )  # fmt: skip
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(initial, inPlace=False)
    affine = method.Execute(fixed, moving)
    metric, stage, transform = method.GetMetricValue(), "affine", sitk.CompositeTransform(affine)
    if settings.deformable:
        mesh = [settings.bspline_mesh] * 3
        bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
        method = _method(settings, fixed_mask, moving_mask)
        method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings.bspline_iterations)
        method.SetMovingInitialTransform(transform)
        method.SetInitialTransform(bspline, inPlace=True)
        method.SetShrinkFactorsPerLevel([1])
        method.SetSmoothingSigmasPerLevel([0.0])
        method.Execute(fixed, moving)
        metric, stage = method.GetMetricValue(), "affine+bspline"
        transform = sitk.CompositeTransform([affine, bspline])
    warped_brain = warp_mask(moving_mask, fixed_mask, transform)
    return Registration(transform=transform, metric=float(metric), brain_dice=dice(warped_brain, fixed_mask), stage=stage)


def _normalise(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) > 0]
    if values.size == 0:
        return image
    lo, hi = np.percentile(values, [1, 99])
    scaled = sitk.Clamp((image - float(lo)) / max(float(hi - lo), 1e-6), sitk.sitkFloat32, 0.0, 1.0)
    return sitk.Mask(scaled, mask)
