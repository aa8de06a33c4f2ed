"""Domain randomisation of training slices, on the fly and seeded (SynthSeg, Billot et al. 2023).

The demo models only ever see phantoms. SynthSeg showed that a network trained on images whose
contrast, bias field, resolution and noise are redrawn for every example learns shapes rather than
one scanner's look, and segments real scans. `randomise_batch` does that to a batch of preprocessed
slices (x (N, C, H, W) float32, scaled inside the brain as preprocessing scaled them (z-scored or by
percentiles, `preprocess/intensity.py`) and 0 outside, as `training_slices` stores them) and its canonical label maps (N, H, W), which it never changes.

Per slice, each step is applied with its own probability (`RandomiseConfig`), in this order:

1. per-class intensities (`class_intensities`): every class (the tumour's labels 1, 2, 3 and
   `background_clusters` intensity clusters of the healthy brain, or a given tissue map) gets a
   random mean and texture gain per sequence, mixed with the original by a random weight. The
   per-class maps are smoothed over `edge_sigma_px` so label borders do not become sharp edges a
   network could cheat on (real edema fades into brain);
1b. a border relative to the slice's own edema (`lesion_border`): the labelled edema fades towards
   its outer edge to a fraction of its contrast, and an unlabelled faint halo (a smaller fraction)
   fades out beyond it, so the network learns that the label ends where brightness falls well
   below the case's own edema, not at a fixed brightness or distance from the core;
2. a smooth multiplicative bias field per sequence (`bias_field`);
3. a random gamma per sequence (`gamma`);
4. random contrast between sequences (`mix_sequences`): a per-sequence contrast stretch and a
   random mixing of the channels;
5. blur and resolution loss (`degrade_resolution`): Gaussian blur, then down- and up-sampling;
6. Gaussian or Rician noise (`add_noise`).

Steps 1-6 work on each sequence rescaled to about [0, 1] inside the brain. At the end every
sequence is scaled back (`restore_scale`) as `scalings` says, one per channel (empty, the default and
make demo's: every channel as z-scored; unet_model's `randomise_keeps_scaling` passes the volumes' own): a
z-scored sequence is clipped to its 0.5 and 99.5 percentiles, z-scored inside the brain and given the
input slice's brain mean and standard deviation; a percentile-scaled one is clipped likewise and
given the input slice's brain median and 99th percentile; 0 outside the brain. Given the volumes' own
scalings the output lives on the scale the network sees at inference: a percentile-scaled FLAIR whose lesion was redrawn faint is
stretched until its brightest voxels sit where the slice's brightest did, as percentile scaling
stretches a faint-lesion volume, instead of keeping the spread a z-score would.

All randomness comes from the `numpy.random.Generator` passed in: one seed, one output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gbm_assets.lib.preprocess.intensity import (
    PERCENTILE,
    PERCENTILE_POINTS,
    PERCENTILE_TOP,
    ZSCORE,
    normalize,
    normalize_percentile,
)
from gbm_assets.lib.synth.acquisition import (
    add_noise,
    bias_field,
    degrade_resolution,
    gamma,
    mix_sequences,
    unit_range,
)
from gbm_assets.lib.synth.anatomy import smooth_noise

__all__ = [
    "RandomiseConfig", "add_noise", "bias_field", "class_intensities", "class_map", "degrade_resolution",
    "gamma", "lesion_border", "mix_sequences", "randomise_batch", "randomise_slice", "restore_scale",
]  # fmt: skip


@dataclass(frozen=True)
class RandomiseConfig:
    """Probabilities and ranges of the randomisation (intensities in units of the [0, 1] brain range).

    Attributes:
        p_intensity, p_bias, p_gamma, p_contrast, p_resolution, p_noise: chance of each step per slice.
        background_clusters: healthy-brain intensity clusters when no tissue map is given.
        mix: range of the weight of the random class intensities against the original image.
        texture_gain: range of the per-class gain of the original texture (log-uniform).
        edge_sigma_px: range of the smoothing of the per-class maps, pixels.
        bias_amplitude: largest std of the log bias field; bias_sigma: its smoothness as a
            fraction of the slice width.
        gamma_log_std: std of log(gamma).
        contrast_log_std: std of the log contrast stretch per sequence; channel_mix: largest weight
            of the other sequences mixed into one.
        blur_sigma_px: range of the Gaussian blur; resolution_factor: range of the down-sampling
            factor per axis (1 = none).
        noise_std: range of the noise std; rician_share: chance that noise is Rician, not Gaussian.
        lesion_contrast: range of the gain (log-uniform, per tumour class and sequence) of each tumour
            label's contrast against the healthy brain: the class's new mean is the redrawn healthy
            brain's mean plus the gain times its old contrast, so edema stays FLAIR- and T2-bright and
            enhancing tumour T1c-bright, faint or strong. None draws tumour classes like healthy ones
            (a random mean, any sign).
        p_border: chance per slice (with edema) of `lesion_border`.
        edema_fade: range of the fraction of the edema's contrast left at its outer edge (None: no fade).
        halo_contrast: range of the halo's contrast at the tumour's edge, as a fraction of the edema's.
        halo_width_px: range of the e-folding width of the halo (and of the edema's fade), pixels.
    """

    p_intensity: float = 0.8
    p_bias: float = 0.5
    p_gamma: float = 0.5
    p_contrast: float = 0.3
    p_resolution: float = 0.3
    p_noise: float = 0.5
    background_clusters: int = 3
    mix: tuple[float, float] = (0.2, 1.0)
    texture_gain: tuple[float, float] = (0.5, 2.0)
    edge_sigma_px: tuple[float, float] = (0.5, 1.5)
    bias_amplitude: float = 0.35
    bias_sigma: float = 0.3
    gamma_log_std: float = 0.3
    contrast_log_std: float = 0.3
    channel_mix: float = 0.3
    blur_sigma_px: tuple[float, float] = (0.0, 1.2)
    resolution_factor: tuple[float, float] = (1.0, 3.0)
    noise_std: tuple[float, float] = (0.0, 0.08)
    rician_share: float = 0.5
    lesion_contrast: tuple[float, float] | None = (0.25, 2.5)
    p_border: float = 0.5
    edema_fade: tuple[float, float] | None = (0.4, 0.7)
    halo_contrast: tuple[float, float] = (0.1, 0.4)
    halo_width_px: tuple[float, float] = (2.0, 8.0)

    def __post_init__(self) -> None:
        probs = (self.p_intensity, self.p_bias, self.p_gamma, self.p_contrast, self.p_resolution, self.p_noise, self.p_border)
        if not all(0 <= p <= 1 for p in probs) or self.background_clusters < 1:
            raise ValueError(f"probabilities must lie in [0, 1] and background_clusters >= 1; got {self}")
        if self.resolution_factor[0] < 1 or any(lo > hi for lo, hi in (self.mix, self.texture_gain, self.edge_sigma_px,
                                                                        self.blur_sigma_px, self.resolution_factor, self.noise_std)):
            raise ValueError(f"ranges must be (low, high) with low <= high and resolution_factor >= 1; got {self}")
        if self.lesion_contrast is not None and not 0 < self.lesion_contrast[0] <= self.lesion_contrast[1]:
            raise ValueError(f"lesion_contrast must be (low, high) with 0 < low <= high, or None; got {self.lesion_contrast}")
        fractions = (self.halo_contrast,) + (() if self.edema_fade is None else (self.edema_fade,))
        if any(not 0 <= lo <= hi <= 1 for lo, hi in fractions) or not 0 < self.halo_width_px[0] <= self.halo_width_px[1]:
            raise ValueError(f"halo_contrast and edema_fade must be fractions (low, high) in [0, 1] and halo_width_px "
                             f"(low, high) > 0; got {self.halo_contrast}, {self.edema_fade}, {self.halo_width_px}")


def class_map(u: np.ndarray, labels: np.ndarray, brain: np.ndarray, clusters: int = 3,
              tissue: np.ndarray | None = None) -> np.ndarray:
    """Classes of one slice: 0 outside the brain, 1..K healthy brain, K + label for tumour labels 1..3.

    Healthy classes come from `tissue` (values > 0 taken as they are, shifted to 1..K) when given;
    otherwise from `clusters` intensity quantile bins of the channels' mean (CSF / grey / white
    matter in a T1-like image)."""
    classes = np.zeros(labels.shape, np.int32)
    healthy = brain & (labels == 0)
    if tissue is not None:
        values = np.unique(tissue[healthy])
        k = max(len(values), 1)
        classes[healthy] = np.searchsorted(values, tissue[healthy]) + 1
    else:
        k = clusters
        mean = u.mean(axis=0)
        if healthy.any():
            edges = np.quantile(mean[healthy], np.linspace(0, 1, k + 1)[1:-1])
            classes[healthy] = np.searchsorted(edges, mean[healthy]) + 1
    tumour = brain & (labels > 0)
    classes[tumour] = k + labels[tumour].astype(np.int32)
    return classes


def class_intensities(rng: np.random.Generator, u: np.ndarray, classes: np.ndarray, config: RandomiseConfig,
                      tumour: np.ndarray | None = None) -> np.ndarray:
    """Random mean and texture gain per class and sequence, mixed with the original (see module doc).

    `tumour` (H, W) bool marks the tumour's pixels: with `config.lesion_contrast`, their classes keep
    the sign of their contrast against the healthy brain (a random gain of it) instead of a free mean.
    Tumour labels are defined by contrast (edema is what is FLAIR-bright around the tumour); drawn
    freely, edema is often invisible and a network learns to paint a blob around the core instead."""
    n = int(classes.max()) + 1
    out = u.copy()
    inside = classes > 0
    w = rng.uniform(*config.mix)
    sigma = rng.uniform(*config.edge_sigma_px)
    counts = np.bincount(classes.ravel(), minlength=n).astype(np.float64)
    for c, ch in enumerate(u):
        old_mean = np.bincount(classes.ravel(), ch.ravel(), minlength=n) / np.maximum(counts, 1)
        new_mean = rng.uniform(0.0, 1.0, n)
        new_mean[0] = 0.0  # outside the brain stays dark, so the smoothed maps fade to 0 at its edge
        if tumour is not None and config.lesion_contrast is not None and tumour.any() and (inside & ~tumour).any():
            lesion = np.unique(classes[tumour])
            healthy = np.setdiff1d(np.arange(1, n), lesion)
            ref_old = np.average(old_mean[healthy], weights=counts[healthy])
            ref_new = np.average(new_mean[healthy], weights=counts[healthy])
            g = np.exp(rng.uniform(*np.log(config.lesion_contrast), len(lesion)))
            new_mean[lesion] = np.clip(ref_new + g * (old_mean[lesion] - ref_old), 0.0, None)
        gain = np.exp(rng.uniform(*np.log(config.texture_gain), n))
        smooth = lambda a: ndimage.gaussian_filter(a.astype(np.float32), sigma)
        synth = smooth(new_mean[classes]) + smooth(gain[classes]) * (ch - smooth(old_mean[classes]))
        out[c][inside] = ((1 - w) * ch + w * synth)[inside]
    return out


def lesion_border(rng: np.random.Generator, u: np.ndarray, labels: np.ndarray, brain: np.ndarray,
                  config: RandomiseConfig) -> np.ndarray:
    """The tumour's outer border made relative to the slice's own edema (u (C, H, W) in [0, 1] units).

    Per sequence, the edema's contrast is its mean minus the mean of the healthy brain 4-12 px
    outside the tumour. With `edema_fade`, the labelled edema's contrast falls from full, deep inside,
    to a random fraction of it at the tumour's edge (e-folding width drawn from `halo_width_px`); then
    an unlabelled halo adds `halo_contrast` (a smaller fraction) of it just outside, fading over the
    same width with a smooth random texture. Real edema fades into brain, and experts and automatic
    references draw its edge at different brightness: the network should learn the edge from the case's
    own edema, not from a fixed brightness or distance. A slice without edema or healthy brain near the
    tumour is returned unchanged."""
    tumour = labels > 0
    edema = labels == 2
    if not edema.any():
        return u
    outside = ndimage.distance_transform_edt(~tumour)
    near = brain & ~tumour & (outside > 4) & (outside <= 12)
    if not near.any():
        return u
    width = rng.uniform(*config.halo_width_px)
    halo = rng.uniform(*config.halo_contrast) * np.exp(-outside / width) * (brain & ~tumour & (outside <= 2 * width))
    halo = halo * np.clip(1 + 0.5 * smooth_noise(rng, u.shape[-2:], (1.0, 1.0), 4.0), 0, None)
    fade = np.ones(labels.shape)
    if config.edema_fade is not None:
        inside = ndimage.distance_transform_edt(tumour)
        edge = rng.uniform(*config.edema_fade)
        fade = np.where(edema, 1 - (1 - edge) * np.exp(-(inside - 1) / width), 1.0)
    out = u.copy()
    for c, ch in enumerate(u):
        base = ch[near].mean()
        contrast = ch[edema].mean() - base
        out[c] = np.where(edema, base + fade * (ch - base), ch) + contrast * halo
        out[c][~brain] = 0
    return np.clip(out, 0, None).astype(np.float32)


def restore_scale(u: np.ndarray, x: np.ndarray, brain: np.ndarray, scaling: str = ZSCORE) -> np.ndarray:
    """The brain's values (1D float32) of one randomised sequence `u` (H, W) put back on the scale of the input
    slice `x` (H, W): clipped to their 0.5 and 99.5 percentiles, then the input's brain mean and standard
    deviation (`zscore`) or its brain median and 99th percentile (`percentile`; `preprocess/intensity.py`)."""
    ref = x[brain]
    if scaling == PERCENTILE:
        low, top = np.percentile(ref.astype(np.float64), PERCENTILE_POINTS)
        return (normalize_percentile(u, brain)[brain] * ((top - low) / PERCENTILE_TOP) + low).astype(np.float32)
    if scaling != ZSCORE:
        raise ValueError(f"unknown intensity scaling {scaling!r}; expected {ZSCORE!r} or {PERCENTILE!r}")
    return normalize(u, brain)[brain] * ref.std() + ref.mean()


def randomise_slice(rng: np.random.Generator, x: np.ndarray, labels: np.ndarray, config: RandomiseConfig = RandomiseConfig(),
                    brain: np.ndarray | None = None, tissue: np.ndarray | None = None,
                    scalings: tuple[str, ...] = ()) -> np.ndarray:
    """One randomised slice (C, H, W) float32 from `x` (C, H, W) and its labels (H, W).

    `brain` defaults to the pixels where any sequence is non-zero; `tissue` (H, W) optional healthy
    tissue classes (phantoms have them); `scalings` each channel's intensity scaling (`zscore` or
    `percentile`; empty: every channel z-scored). Outside the brain the output is 0; inside, each
    sequence keeps the input's scale (`restore_scale`). A slice without brain is returned unchanged (a copy)."""
    x = np.asarray(x, dtype=np.float32)
    brain = (x != 0).any(axis=0) if brain is None else np.asarray(brain, bool)
    if brain.sum() < 2:
        return x.copy()
    u = unit_range(x, brain)
    if rng.random() < config.p_intensity:
        u = class_intensities(rng, u, class_map(u, labels, brain, config.background_clusters, tissue), config, brain & (labels > 0))
    if rng.random() < config.p_border:
        u = lesion_border(rng, u, labels, brain, config)
    if rng.random() < config.p_bias:
        u = bias_field(rng, u, config)
    if rng.random() < config.p_gamma:
        u = gamma(rng, u, brain, config)
    if rng.random() < config.p_contrast:
        u = mix_sequences(rng, u, brain, config)
    if rng.random() < config.p_resolution:
        u = degrade_resolution(rng, u, config)
    if rng.random() < config.p_noise:
        u = add_noise(rng, u, config)
    scalings = tuple(scalings) or (ZSCORE,) * len(x)
    if len(scalings) != len(x):
        raise ValueError(f"{len(scalings)} scalings for {len(x)} channels")
    out = np.zeros_like(x)
    for c, ch in enumerate(u):
        out[c][brain] = restore_scale(np.nan_to_num(ch), x[c], brain, scalings[c])
    return out


def randomise_batch(rng: np.random.Generator, x: np.ndarray, labels: np.ndarray, config: RandomiseConfig = RandomiseConfig(),
                    tissue: np.ndarray | None = None, scalings: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """`randomise_slice` on every slice of x (N, C, H, W) with labels (N, H, W); tissue (N, H, W) optional;
    `scalings` each channel's intensity scaling (empty: z-scored).

    Returns (randomised x, labels): the labels are the very array passed in, untouched.

    Raises:
        ValueError: x and labels disagree on N, H, W.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[:1] + x.shape[2:] != np.shape(labels):
        raise ValueError(f"expected x (N, C, H, W) and labels (N, H, W); got {x.shape} and {np.shape(labels)}")
    out = np.stack([randomise_slice(rng, x[i], labels[i], config, tissue=None if tissue is None else tissue[i], scalings=scalings)
                    for i in range(len(x))]) if len(x) else x.astype(np.float32)  # fmt: skip
    return out, labels
