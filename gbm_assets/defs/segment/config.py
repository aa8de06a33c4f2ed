"""Run configuration of the U-Net assets (editable in the Dagster launchpad)."""

import dagster as dg

from gbm_assets.lib.masks.postprocess import POSTPROCESS


class UNetSettings(dg.Config):
    base: int = 64
    """Width of the first U-Net level (the study: 64; the demo uses 8)."""
    epochs: int = 20
    batch_size: int = 16
    dropout: float = 0.3
    """Dropout2d probability in every block (the study: 0.3). At the demo's base width 8 a dropped feature map is an
    eighth of a level's channels; the demo trains its region models without it (demo/unet.yaml)."""
    learning_rate: float = 1e-3
    seed: int = 0
    augment: bool = True
    schedule: str = "constant"
    """Learning rate over the run: "constant", "onecycle" (peak learning_rate) or "cosine" (demo: onecycle)."""
    compile: bool | None = None
    """torch.compile the model; None = on with CUDA, off on CPU (where it does not pay for its compile time)."""
    channels_last: bool | None = None
    """channels_last memory format; None = on with CUDA, off on CPU."""
    threads: int = 0
    """torch threads while training; 0 = torch's default."""
    num_workers: int = 0
    """DataLoader worker processes reading slice batches from disk (0: the training process reads them; on a
    GPU 2-4 keep it fed). Batches, augmentation and weights do not depend on it."""
    target: str = "binary"
    """What the U-Net predicts: "binary" (whole tumour, the study's model) or "regions" (three sigmoid channels,
    whole tumour / tumour core / enhancing, trained with BCE + soft Dice per region on the canonical labels)."""
    randomise: bool = False
    """Domain randomisation of the training batches (lib/synth/randomise: per-tissue intensities, an edema border
    relative to the slice's own edema, bias field, gamma, blur and resolution loss, noise, contrast between
    sequences), seeded by (seed, epoch, batch); never validation."""
    randomise_keeps_scaling: bool = False
    """With randomise: give each randomised channel back the scaling its volumes carry (percentile-scaled FLAIR and
    T2 their slice's median and 99th percentile, where inference puts a case's brightest tissue) instead of z-score
    matching every channel to its slice's mean and SD. Tried in make demo and left off there (README, transfer):
    `all` traded BRATS_001's figures for TCGA-06-1802's, `stack` and `t2` transferred better."""
    spatial: bool = False
    """Random in-plane zoom (0.71-1.4x) and rotation (+-15 degrees) of half the training slices with their labels
    (lib/segment/spatial), so the model does not learn one scale of tumour; seeded by (seed, epoch, batch)."""
    training_cohorts: list[str] = []
    """Cohorts of training_splits whose patients train the model; empty = every cohort it lists."""


class MetricsSettings(dg.Config):
    """How segmentation_metrics post-processes predicted volumes: the defaults are lesion_masks' (one place,
    `lib/masks/postprocess.POSTPROCESS`), so the metrics describe the masks the model will produce."""

    threshold: float = POSTPROCESS.threshold
    min_component_mm3: float = POSTPROCESS.min_component_mm3
