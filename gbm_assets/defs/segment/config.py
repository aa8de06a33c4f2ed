"""Run configuration of the segmentation assets (editable in the Dagster launchpad)."""

import dagster as dg


class PreprocessSettings(dg.Config):
    target_spacing_mm: float = 1.0
    """In-plane voxel size after resampling, mm."""
    slice_thickness_mm: float | None = None
    """Slice thickness after resampling, mm; None keeps the native thickness."""
    size: int = 192
    """In-plane size (H = W) after crop/pad; a multiple of 16."""


class SliceSettings(dg.Config):
    lesion_free_fraction: float = 0.2
    """Share of lesion-free brain slices kept per patient."""
    seed: int = 0
    """Seeds the patient-level splits and the lesion-free slice draw."""
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    test_fraction: float = 0.15


class UNetSettings(dg.Config):
    base: int = 64
    """Width of the first U-Net level (the study: 64; the demo uses 8)."""
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    augment: bool = True
    training_cohorts: list[str] = []
    """Cohorts whose training slices train the model; empty = every cohort with training_slices."""


class MaskSettings(dg.Config):
    sequence: str = "stack"
    """Which champion U-Net segments the cohort (t1, t1c, t2, flair or stack)."""
    threshold: float = 0.5
    min_component_mm3: float = 1000.0
    """Connected components smaller than this are removed."""
    batch_size: int = 16
