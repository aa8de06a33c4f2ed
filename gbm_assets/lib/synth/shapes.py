"""Phantoms with tumours as varied as real ones: irregular, multifocal, with or without necrosis,
with edema from a thin rim to most of a hemisphere.

`phantom.synth_patient` draws tumours from four subtype phenotypes (its sizes and fractions carry
the subtypes' signal, and the demo's numbers depend on them, so it stays as it is). For teaching a
U-Net what tumours look like, `synth_varied_patient` draws from much wider ranges instead, using the
same anatomy and signal model (`anatomy.brain_tissues`, `grow_tumour`, `render`):

- size: radius 7-30 mm (log-uniform); irregularity up to 0.3 (lobulated borders);
- necrosis: absent in `p_no_necrosis` of the tumours (a solid non-enhancing core), otherwise 15-85 %
  of the radius; enhancing share of the rim 5-100 %; contrast uptake 0.3-1.6;
- edema: 0.5-30 mm beyond the core (log-uniform): from almost none to vast;
- foci: 1 to `max_foci` (multifocal in `p_multifocal` of the patients); satellites are smaller and
  lie 1.2-3 radii from the main tumour, each with its own shape.

Seeded like everything in `lib.synth`: one seed, one patient, voxel for voxel. It is a new function
beside `synth_patient` and draws nothing from the latter's random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gbm_assets.lib.synth.anatomy import (
    BRAIN_RADIUS_MM,
    CANONICAL_OF_CLASS,
    NECROSIS,
    Grid,
    Tumour,
    brain_tissues,
    grow_tumour,
    render,
    tumour_centre,
)
from gbm_assets.lib.synth.phantom import LOBES, SynthOptions, SynthPatient, synth_affine

__all__ = ["ShapeRanges", "draw_varied_phenotype", "merge_tumours", "synth_varied_patient"]

DEFAULT_OPTIONS = SynthOptions()


@dataclass(frozen=True)
class ShapeRanges:
    """Ranges of the varied tumours (see the module docstring); (low, high) pairs are uniform unless noted."""

    radius_mm: tuple[float, float] = (7.0, 30.0)  # log-uniform
    edema_mm: tuple[float, float] = (0.5, 30.0)  # log-uniform
    necrosis_fraction: tuple[float, float] = (0.15, 0.85)
    p_no_necrosis: float = 0.3
    rim_mm: tuple[float, float] = (1.5, 9.0)
    enhancing_fraction: tuple[float, float] = (0.05, 1.0)
    uptake: tuple[float, float] = (0.3, 1.6)
    heterogeneity: tuple[float, float] = (0.01, 0.3)
    irregularity: tuple[float, float] = (0.05, 0.3)
    p_multifocal: float = 0.35
    max_foci: int = 3


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_varied_phenotype(rng: np.random.Generator, ranges: ShapeRanges = ShapeRanges(), scale: float = 1.0) -> dict:
    """One focus' phenotype (the keys `anatomy.grow_tumour` reads), radius multiplied by `scale`."""
    r = ranges
    p = {"radius_mm": _log_uniform(rng, *r.radius_mm) * scale, "edema_mm": _log_uniform(rng, *r.edema_mm)}
    necrotic = rng.random() >= r.p_no_necrosis
    p["necrosis_fraction"] = float(rng.uniform(*r.necrosis_fraction)) if necrotic else 0.0
    for key in ("rim_mm", "enhancing_fraction", "uptake", "heterogeneity", "irregularity"):
        p[key] = float(rng.uniform(*getattr(r, key)))
    p["rim_mm"] = min(p["rim_mm"], 0.6 * p["radius_mm"])
    return p


def merge_tumours(tumours: list[Tumour], shape: tuple[int, int, int]) -> Tumour:
    """One `Tumour` over the union of the foci's boxes; where foci overlap, the higher class wins
    (enhancing > necrosis > non-enhancing > edema) and brings its own uptake, edema weight and texture."""
    lo = [min(t.box[d].start for t in tumours) for d in range(3)]
    hi = [max(t.box[d].stop for t in tumours) for d in range(3)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    size = tuple(b - a for a, b in zip(lo, hi))
    fields = {k: np.zeros((len(tumours), *size), np.float32) for k in ("edema_weight", "uptake", "texture")}
    classes = np.zeros((len(tumours), *size), np.uint8)
    for i, t in enumerate(tumours):
        local = tuple(slice(s.start - a, s.stop - a) for s, a in zip(t.box, lo))
        classes[(i, *local)] = t.classes
        for k, arr in fields.items():
            arr[(i, *local)] = getattr(t, k)
    win = classes.argmax(axis=0)[None]
    pick = lambda a: np.take_along_axis(a, win, axis=0)[0]
    return Tumour(box, pick(classes), pick(fields["edema_weight"]), pick(fields["uptake"]), pick(fields["texture"]))


def _satellite_centre(rng: np.random.Generator, main: np.ndarray, radius: float, semi: np.ndarray) -> np.ndarray:
    """A point 1.2-3 main radii from the main centre in a random direction, pulled inside the brain."""
    direction = rng.standard_normal(3)
    p = main + direction / np.linalg.norm(direction) * radius * rng.uniform(1.2, 3.0)
    for _ in range(50):
        if np.linalg.norm(p / semi) < 1 - 10 / BRAIN_RADIUS_MM:
            break
        p = 0.9 * p + 0.1 * main
    return p


def synth_varied_patient(seed: int, options: SynthOptions = DEFAULT_OPTIONS, ranges: ShapeRanges = ShapeRanges()) -> SynthPatient:
    """A phantom with a varied (possibly multifocal) tumour; `SynthPatient` as `synth_patient` returns.

    `subtype` is "varied"; `params` holds `foci` (one phenotype dict per focus, the main one first),
    `n_foci`, `necrosis` (any focus with a necrotic centre), `age`, and the measured region volumes
    (whole_tumor_ml, tumor_core_ml, enhancing_ml, edema_ml). No clinical values: these patients
    teach segmentation, not survival.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5A4E]))  # a stream of its own
    age = float(rng.uniform(25, 85))
    grid = Grid.fitted(options.shape, options.spacing)
    tissue, semi = brain_tissues(rng, grid, age)
    main = draw_varied_phenotype(rng, ranges)
    lobe = LOBES[int(rng.integers(len(LOBES)))]
    side = 1 if rng.random() < 0.5 else -1
    centre = tumour_centre(rng, semi, lobe, side, min(main["radius_mm"] * 1.25 + 4, 0.5 * BRAIN_RADIUS_MM))
    n_foci = int(rng.integers(2, ranges.max_foci + 1)) if ranges.max_foci > 1 and rng.random() < ranges.p_multifocal else 1
    foci = [main] + [draw_varied_phenotype(rng, ranges, scale=float(rng.uniform(0.3, 0.7))) for _ in range(n_foci - 1)]
    centres = [centre] + [_satellite_centre(rng, centre, main["radius_mm"], semi) for _ in foci[1:]]
    tumour = merge_tumours([grow_tumour(rng, grid, tissue, c, p) for c, p in zip(centres, foci)], grid.shape)
    style = {"heterogeneity": max(p["heterogeneity"] for p in foci)}
    images = render(rng, grid, tissue, tumour, style, options.noise, options.bias)
    labels = np.zeros(options.shape, np.uint8)
    labels[tumour.box] = CANONICAL_OF_CLASS[tumour.classes]
    counts = np.bincount(labels.ravel(), minlength=4) * float(np.prod(options.spacing)) / 1000
    params = {"foci": foci, "n_foci": n_foci, "necrosis": bool((tumour.classes == NECROSIS).any()), "age": age,
              "whole_tumor_ml": float(counts[1:].sum()), "tumor_core_ml": float(counts[1] + counts[3]),
              "enhancing_ml": float(counts[3]), "edema_ml": float(counts[2])}  # fmt: skip
    if options.orientation == "LPS":
        images = {k: np.ascontiguousarray(v[::-1, ::-1]) for k, v in images.items()}
        labels, tissue = (np.ascontiguousarray(a[::-1, ::-1]) for a in (labels, tissue))
    return SynthPatient(seed, "varied", images, labels, synth_affine(options), tissue, params)
