"""Seeded synthetic longitudinal cohorts: 3-5 scans per subject whose tumour grows, responds or stays stable.

`write_longitudinal_cohort` writes the layout `gbm_assets.lib.ingest.layouts.longitudinal` reads:

    <cohorts_dir>/<cohort>/<cohort>-000/week-000/<cohort>-000_{t1,t1ce,t2,flair,seg}.nii.gz
    <cohorts_dir>/<cohort>/<cohort>-000/week-009/...
    <cohorts_dir>/<cohort>/clinical.csv   patient_id (= <subject>__week-NNN), subtype,
                                          survival_months (from that scan), event, idh_status, age

Per subject one brain, one tumour centre and one phenotype (drawn like `phantom.synth_patient`);
per time point the tumour is regrown at a scaled size (radius and edema x volume factor^(1/3)) and
the images re-rendered with fresh noise. Trajectories (volume factor relative to baseline):
    growth:   1.0, 1.1, then x1.9 per scan   (crosses +40 % from nadir: progression)
    response: 1.0, 0.45, 0.25, 0.2, 0.2      (-75 % from baseline: partial response)
    stable:   1.0 with +-8 % wobble
Measured volumes follow the factors only roughly (the tumour is clipped by the brain and
re-drawn). Same arguments, same bytes (gzip mtime 0, fixed CSV formatting, atomic writes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES, SUBTYPES
from gbm_assets.lib.ingest.layouts.longitudinal import timepoint_id
from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.store.paths import validate_cohort_name
from gbm_assets.lib.synth.anatomy import (
    CANONICAL_OF_CLASS,
    Grid,
    brain_tissues,
    grow_tumour,
    render,
    tumour_centre,
)
from gbm_assets.lib.synth.phantom import (
    _CLINICAL,
    BRATS_SUFFIX,
    SynthOptions,
    _draw_phenotype,
    nifti_bytes,
    synth_affine,
)

TRAJECTORIES = ("growth", "response", "stable")
LONGITUDINAL_CLINICAL_COLUMNS = ("patient_id", "subtype", "survival_months", "event", "idh_status", "age")
MANIFEST_COLUMNS = ("subject", "timepoint", "week", "patient_id", "trajectory", "volume_factor", "whole_tumor_ml")
_SURVIVAL_FACTOR = {"growth": 0.6, "stable": 1.0, "response": 1.5}


def volume_factors(trajectory: str, n: int, rng: np.random.Generator) -> list[float]:
    """Whole-tumour volume relative to baseline at each of `n` scans (first = 1.0).

    Raises:
        ValueError: unknown trajectory or n < 1.
    """
    if trajectory not in TRAJECTORIES or n < 1:
        raise ValueError(f"trajectory must be one of {TRAJECTORIES} and n >= 1; got {trajectory!r}, {n}")
    if trajectory == "growth":
        return [1.0, 1.1, *(1.1 * 1.9**k for k in range(1, n - 1))][:n]
    if trajectory == "response":
        return [1.0, 0.45, 0.25, 0.2, 0.2, 0.2][:n]
    return [1.0, *(float(1 + rng.uniform(-0.08, 0.08)) for _ in range(n - 1))]


def _scan(subject_seed: int, p: dict, factor: float, scan_seed: int, options: SynthOptions):
    """(images, canonical labels) of one scan: the subject's brain and tumour centre, tumour scaled by `factor`."""
    rng = np.random.default_rng(subject_seed)
    grid = Grid.fitted(options.shape, options.spacing)
    tissue, semi = brain_tissues(rng, grid, p["age"])
    centre = tumour_centre(rng, semi, p["lobe"], 1 if p["hemisphere"] == "right" else -1, p["radius_mm"] * 1.25 + 4)
    scale = factor ** (1 / 3)
    q = dict(p, radius_mm=p["radius_mm"] * scale, edema_mm=p["edema_mm"] * scale)
    q["rim_mm"] = min(p["rim_mm"], 0.6 * q["radius_mm"])
    tumour = grow_tumour(np.random.default_rng([subject_seed, 1]), grid, tissue, centre, q)
    images = render(np.random.default_rng(scan_seed), grid, tissue, tumour, q, options.noise, options.bias)
    labels = np.zeros(options.shape, np.uint8)
    labels[tumour.box] = CANONICAL_OF_CLASS[tumour.classes]
    if options.orientation == "LPS":
        images = {k: np.ascontiguousarray(v[::-1, ::-1]) for k, v in images.items()}
        labels = np.ascontiguousarray(labels[::-1, ::-1])
    return {s: images[s] for s in SEQUENCES}, labels


def write_longitudinal_cohort(cohorts_dir: Path, cohort: str, n_subjects: int, seed: int,
                              options: SynthOptions | None = None, timepoints: tuple[int, int] = (3, 5)) -> pd.DataFrame:
    """Write `n_subjects` synthetic subjects of 3-5 scans each (see the module docstring) and
    return the manifest (`MANIFEST_COLUMNS`, one row per scan: the trajectory and measured volume).

    Subjects are `<cohort>-000`, ...; trajectories cycle growth, response, stable in an order
    shuffled by `seed`; scans are 6-12 weeks apart. Other files in the folder are left alone.
    About 0.5 s per scan at the default size.

    Raises:
        CohortNameError: unsafe cohort name. ValueError: n_subjects < 1 or a bad `timepoints` range.
    """
    validate_cohort_name(cohort)
    options = options or SynthOptions()
    lo, hi = timepoints
    if n_subjects < 1 or not 1 <= lo <= hi:
        raise ValueError(f"need n_subjects >= 1 and 1 <= timepoints[0] <= timepoints[1]; got {n_subjects}, {timepoints}")
    folder = Path(cohorts_dir) / cohort
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(TRAJECTORIES))
    brats_lut = np.array([0, 1, 2, 4], np.uint8)
    affine, voxel_ml = synth_affine(options), float(np.prod(options.spacing)) / 1000
    clinical, manifest = [], []
    for i in range(n_subjects):
        subject = f"{cohort}-{i:03d}"
        subject_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        rng = np.random.default_rng([subject_seed, 2])
        subtype = SUBTYPES[int(rng.integers(len(SUBTYPES)))]
        trajectory = TRAJECTORIES[int(order[i % len(order)])]
        p = _draw_phenotype(rng, subtype)
        p["radius_mm"] = float(np.clip(p["radius_mm"], 9, 15))  # room to grow inside the brain
        n = int(rng.integers(lo, hi + 1))
        weeks = np.concatenate([[0], np.cumsum(rng.integers(6, 13, n - 1))]).astype(int)
        months = _CLINICAL[subtype][3] * (1.8 if p["idh_status"] == "mutant" else 1.0) * _SURVIVAL_FACTOR[trajectory]
        survival = max(float(months * np.exp(0.35 * rng.standard_normal())), weeks[-1] / 4.345 + 1.0)
        event = int(rng.random() < 0.8)
        for k, (week, factor) in enumerate(zip(weeks, volume_factors(trajectory, n, rng))):
            timepoint = f"week-{week:03d}"
            pid = timepoint_id(subject, timepoint)
            images, labels = _scan(subject_seed, p, factor, int(np.random.SeedSequence([seed, i, k]).generate_state(1)[0]), options)
            out = folder / subject / timepoint
            out.mkdir(parents=True, exist_ok=True)
            for seq, image in images.items():
                write_bytes_atomic(out / f"{subject}_{BRATS_SUFFIX[seq]}.nii.gz", nifti_bytes(image, affine))
            write_bytes_atomic(out / f"{subject}_seg.nii.gz", nifti_bytes(brats_lut[labels], affine))
            clinical.append((pid, subtype, round(survival - week / 4.345, 1), event, p["idh_status"], p["age"]))
            manifest.append((subject, timepoint, int(week), pid, trajectory, round(factor, 4),
                             round(float(np.count_nonzero(labels) * voxel_ml), 3)))
    table = pd.DataFrame(clinical, columns=list(LONGITUDINAL_CLINICAL_COLUMNS))
    write_bytes_atomic(folder / "clinical.csv", table.to_csv(index=False, float_format="%.1f", lineterminator="\n").encode())
    return pd.DataFrame(manifest, columns=list(MANIFEST_COLUMNS))
