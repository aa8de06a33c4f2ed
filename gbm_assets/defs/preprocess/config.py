"""Run configuration of the preprocess assets (editable in the Dagster launchpad), and the code
versions of the stages' assets."""

import hashlib
import inspect
from types import ModuleType

import dagster as dg

from gbm_assets.lib.preprocess.intensity import DEFAULT_PERCENTILE_SCALED


def source_version(*modules: ModuleType) -> str:
    """A 12-hex code version: SHA-256 of the modules' source text (changes when their code does)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:12]


class PreprocessSettings(dg.Config):
    target_spacing_mm: float = 1.0
    """In-plane voxel size after resampling, mm."""
    slice_thickness_mm: float | None = None
    """Slice thickness after resampling, mm; None keeps the native thickness."""
    size: int = 192
    """In-plane size (H = W) after crop/pad; a multiple of 16."""
    percentile_scaled: list[str] = list(DEFAULT_PERCENTILE_SCALED)
    """Sequences scaled to the brain's median (0) and 99th percentile (2.5) instead of z-scored (default FLAIR
    and T2; [] z-scores every sequence, as the study did). Models remember the scaling they were trained on;
    lesion_masks refuses a cohort scaled otherwise."""
    anti_alias: bool = True
    """Low-pass each image inside the brain before resampling it to a coarser grid (a 0.43 mm clinical slice onto
    1 mm), as a coarser scan would average it; false: linear interpolation alone."""


class SliceSettings(dg.Config):
    lesion_free_fraction: float = 0.2
    """Share of lesion-free brain slices kept per patient."""
    seed: int = 0
    """Seeds the subject-level splits (a seeded hash of each subject id) and the lesion-free slice draw.
    Keep it the same for every cohort: a subject under two cohorts with two seeds can land in two splits,
    which the blocking check on training_splits refuses."""
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
