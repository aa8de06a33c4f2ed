"""Run configuration of `tumor_location` and the threshold of its check (editable in the launchpad)."""

import dagster as dg

from gbm_assets.lib.location.patient import DEFAULT_DICE_FLOOR


class LocationSettings(dg.Config):
    registration: str = "affine"
    """'affine' (default) or 'deformable' (affine, then a BSpline stage: slower, rarely needed for lobes)."""
    dice_floor: float = DEFAULT_DICE_FLOOR
    """A registration whose brain-mask Dice with the template is below this is recorded as failed, not used."""
    spacing_mm: float = 3.0
    """Isotropic spacing images are resampled to for registration."""
    iterations: int = 100
    """Optimiser iterations per resolution level (affine stage)."""
    pictures: int = 3
    """Patients drawn over the template in the metadata (0-3)."""


class RegistrationFloorSettings(dg.Config):
    dice_floor: float = DEFAULT_DICE_FLOOR
    """tumor_location: every patient's brain-mask Dice after registration must reach this."""
