"""What the scanner does to an image, randomised (steps 2-6 of `randomise`): bias field, gamma, contrast
between sequences, blur and resolution loss, noise. Label-agnostic, per sequence, on images rescaled to
about [0, 1] inside the brain (`unit_range`); the ranges come from `randomise.RandomiseConfig`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from gbm_assets.lib.synth.anatomy import smooth_noise

if TYPE_CHECKING:
    from gbm_assets.lib.synth.randomise import RandomiseConfig

__all__ = ["add_noise", "bias_field", "degrade_resolution", "gamma", "mix_sequences", "unit_range"]


def unit_range(u: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Each channel rescaled so its brain's 1st..99th percentiles span 0..1 (clipped at 0), 0 outside."""
    out = np.zeros_like(u, dtype=np.float32)
    for c, ch in enumerate(u):
        lo, hi = np.percentile(ch[brain], (1, 99))
        out[c][brain] = np.clip((ch[brain] - lo) / (hi - lo if hi > lo else 1.0), 0, None)
    return out


def bias_field(rng: np.random.Generator, u: np.ndarray, config: RandomiseConfig) -> np.ndarray:
    """u times exp(a * smooth unit noise), a fresh field and amplitude a per sequence."""
    h, w = u.shape[-2:]
    sigma = config.bias_sigma * max(h, w)
    return np.stack([ch * np.exp(rng.uniform(0, config.bias_amplitude) * smooth_noise(rng, (h, w), (1.0, 1.0), sigma))
                     for ch in u]).astype(np.float32)  # fmt: skip


def gamma(rng: np.random.Generator, u: np.ndarray, brain: np.ndarray, config: RandomiseConfig) -> np.ndarray:
    """Each sequence, rescaled to [0, 1] in the brain, raised to exp(N(0, gamma_log_std))."""
    unit = unit_range(u, brain)
    return np.stack([ch ** np.exp(rng.normal(0, config.gamma_log_std)) for ch in unit]).astype(np.float32)


def mix_sequences(rng: np.random.Generator, u: np.ndarray, brain: np.ndarray, config: RandomiseConfig) -> np.ndarray:
    """Random contrast between sequences: each channel stretched about its brain median by
    exp(N(0, contrast_log_std)), then mixed with the others (weight up to `channel_mix`)."""
    out = u.copy()
    for c, ch in enumerate(u):
        med = float(np.median(ch[brain])) if brain.any() else 0.0
        out[c] = med + np.exp(rng.normal(0, config.contrast_log_std)) * (ch - med)
    n = len(u)
    if n > 1:
        weights = rng.uniform(0, 1, (n, n))
        np.fill_diagonal(weights, 0)
        weights *= rng.uniform(0, config.channel_mix, (n, 1)) / weights.sum(axis=1, keepdims=True)
        np.fill_diagonal(weights, 1 - weights.sum(axis=1))
        out = np.tensordot(weights, out, axes=1)
    return np.clip(out, 0, None).astype(np.float32)


def degrade_resolution(rng: np.random.Generator, u: np.ndarray, config: RandomiseConfig) -> np.ndarray:
    """Per sequence: Gaussian blur, then down-sampling by a random factor per axis (anti-aliased) and
    linear up-sampling back to the slice size: thick slices, low in-plane resolution, soft edges."""
    shape = np.array(u.shape[-2:])
    out = []
    for ch in u:
        factor = rng.uniform(*config.resolution_factor, 2)
        ch = ndimage.gaussian_filter(ch, np.hypot(rng.uniform(*config.blur_sigma_px), 0.4 * (factor - 1)))
        small_shape = np.maximum(np.round(shape / factor).astype(int), 2)
        small = ndimage.zoom(ch, small_shape / shape, order=1, grid_mode=True, mode="nearest")
        out.append(ndimage.zoom(small, shape / np.array(small.shape), order=1, grid_mode=True, mode="nearest"))
    return np.stack(out).astype(np.float32)


def add_noise(rng: np.random.Generator, u: np.ndarray, config: RandomiseConfig) -> np.ndarray:
    """Gaussian, or (with chance `rician_share`) Rician noise of a random std per sequence."""
    out = []
    for ch in u:
        std = rng.uniform(*config.noise_std)
        n1 = rng.standard_normal(ch.shape).astype(np.float32) * std
        if rng.random() < config.rician_share:
            n2 = rng.standard_normal(ch.shape).astype(np.float32) * std
            out.append(np.sqrt((np.clip(ch, 0, None) + n1) ** 2 + n2**2))
        else:
            out.append(ch + n1)
    return np.stack(out).astype(np.float32)
