"""Seeded synthetic glioblastoma MRI cohorts: four sequences, a tumour mask, clinical data.

`synth_patient` draws one patient; `write_cohort` writes a cohort in BraTS 2021 naming,

    <cohorts_dir>/<cohort>/<patient>/<patient>_{t1,t1ce,t2,flair,seg}.nii.gz
    <cohorts_dir>/<cohort>/clinical.csv   patient_id, subtype, survival_months, idh_status, age

so the whole platform can run end to end without real data.

What the module guarantees:
    * Same arguments, same bytes: images, masks and CSV are byte-identical across runs (gzip
      mtime 0, fixed CSV formatting, atomic writes). Different seeds give different patients.
    * Images are float32 of `SynthOptions.shape` (x, y, z voxels), skull-stripped (exactly 0
      outside the brain), in arbitrary scanner units (white matter about 400-900 by sequence).
    * Masks hold canonical labels (`contract`: 1 necrotic/non-enhancing core, 2 edema,
      3 enhancing) in memory and BraTS labels (1, 2, 4) on disk; every patient has all three,
      and tumour voxels lie inside the brain.
    * Contrasts: T1 WM > GM > CSF with a dark core; T1c adds a bright enhancing rim; T2 CSF
      brightest, edema bright, GM > WM; FLAIR CSF suppressed, edema and tumour bright.
    * Subtypes (`contract.SUBTYPES`) shift size, necrosis, enhancement, edema, heterogeneity,
      location, age, IDH status and survival, with spreads that overlap between subtypes.
    * The anatomy is the same in world coordinates whatever `orientation` and `oblique_deg`.

Not a simulator of MR physics: relative intensities are rough literature values.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES, SUBTYPES
from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.store.paths import validate_cohort_name
from gbm_assets.lib.synth.anatomy import (
    CANONICAL_OF_CLASS, Grid, brain_tissues, grow_tumour, render, tumour_centre,
)

BRATS_SUFFIX = {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair"}
CLINICAL_COLUMNS = ("patient_id", "subtype", "survival_months", "idh_status", "age")
LOBES = ("frontal", "temporal", "parietal", "occipital")

# Subtype -> (mean, spread) of each phenotype parameter. Sizes are log-normal (spread in log
# units), fractions and intensities normal; all are clipped to `_LIMITS`.
_PHENOTYPES: dict[str, dict[str, tuple[float, float]]] = {
    "Mesenchymal": dict(radius_mm=(19, .25), necrosis_fraction=(.62, .12), rim_mm=(5.5, .25),
                        enhancing_fraction=(.9, .1), uptake=(1.0, .2), edema_mm=(12, .35),
                        heterogeneity=(.14, .04), irregularity=(.18, .05)),
    "Classical": dict(radius_mm=(16, .25), necrosis_fraction=(.5, .12), rim_mm=(4.5, .25),
                      enhancing_fraction=(.9, .1), uptake=(1.15, .2), edema_mm=(12, .35),
                      heterogeneity=(.10, .04), irregularity=(.14, .05)),
    "Proneural": dict(radius_mm=(14, .25), necrosis_fraction=(.35, .12), rim_mm=(3.5, .25),
                      enhancing_fraction=(.5, .15), uptake=(.75, .2), edema_mm=(7, .35),
                      heterogeneity=(.07, .04), irregularity=(.12, .05)),
    "Neural": dict(radius_mm=(12, .25), necrosis_fraction=(.4, .12), rim_mm=(3.2, .25),
                   enhancing_fraction=(.55, .15), uptake=(.7, .2), edema_mm=(6.5, .35),
                   heterogeneity=(.04, .03), irregularity=(.10, .05)),
}
_LOG_NORMAL = ("radius_mm", "rim_mm", "edema_mm")
_LIMITS = dict(radius_mm=(7, 28), necrosis_fraction=(.15, .85), rim_mm=(2.6, 9), enhancing_fraction=(.2, 1),
               uptake=(.45, 1.6), edema_mm=(3, 28), heterogeneity=(.01, .25), irregularity=(.04, .3))
# Subtype -> lobe probabilities (LOBES order), age mean, P(IDH mutant), median survival (months).
_CLINICAL = {
    "Mesenchymal": ((.25, .35, .25, .15), 58, .03, 11.0),
    "Classical": ((.30, .25, .30, .15), 60, .03, 14.0),
    "Proneural": ((.60, .15, .15, .10), 46, .40, 20.0),
    "Neural": ((.30, .30, .25, .15), 60, .08, 15.0),
}


# Subtype -> P(IDH mutant) before the phenotype's shift (Verhaak 2010: IDH1 / G-CIMP tumours are mostly Proneural).
_IDH_BASE = {"Mesenchymal": .04, "Classical": .06, "Proneural": .30, "Neural": .15}
IDH_STREAM = 0x1D4
"""Second word of the IDH status's own RNG stream, `default_rng([patient seed, IDH_STREAM])`."""


def idh_status(seed: int, subtype: str, p: dict) -> str:
    """A patient's IDH status, drawn from its OWN random stream so images and subtypes do not move with it.

    Log-odds = logit(`_IDH_BASE[subtype]`) + 6 (0.45 - necrosis fraction) + 4 (0.7 - enhancing fraction)
    + 1 when frontal: IDH-mutant glioblastomas show less necrosis and enhancement and sit frontally more
    often (e.g. Lasocki et al. 2015; Carrillo et al. 2012), so the status is visible in the images, as the
    IDH classifier needs. (`_draw_phenotype`'s own IDH draw is kept, unused here, so its stream is unchanged.)
    """
    base = _IDH_BASE[subtype]
    z = (np.log(base / (1 - base)) + 6 * (0.45 - p["necrosis_fraction"]) + 4 * (0.7 - p["enhancing_fraction"])
         + (1.0 if p["lobe"] == "frontal" else 0.0))
    return "mutant" if np.random.default_rng([seed, IDH_STREAM]).random() < 1 / (1 + np.exp(-z)) else "wildtype"


@dataclass(frozen=True)
class SynthOptions:
    """Geometry and image quality of synthetic patients.

    Attributes:
        shape: voxels (x, y, z); z is the axial slice axis.
        spacing: voxel size in mm (x, y, z). The brain (about 140 x 170 x 120 mm) shrinks only
            if the field of view `shape * spacing` is too small for it.
        orientation: "RAS" or "LPS": axis directions of the written affine. LPS arrays are the
            RAS arrays flipped in x and y, so the anatomy is the same in world coordinates.
        oblique_deg: rotation of the affine about the z axis, degrees.
        noise: Rician noise std as a fraction of the white-matter signal.
        bias: amplitude of a smooth multiplicative bias field: it spans exp(-bias)..exp(bias).
    """

    shape: tuple[int, int, int] = (128, 128, 64)
    spacing: tuple[float, float, float] = (1.5, 1.5, 2.5)
    orientation: str = "RAS"
    oblique_deg: float = 0.0
    noise: float = 0.03
    bias: float = 0.15

    def __post_init__(self) -> None:
        if self.orientation not in ("RAS", "LPS"):
            raise ValueError(f"orientation must be 'RAS' or 'LPS', not {self.orientation!r}")
        if len(self.shape) != 3 or min(self.shape) < 8 or len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"need a 3-D shape of >= 8 voxels per axis and positive spacing; got {self}")


@dataclass
class SynthPatient:
    """One synthetic patient.

    Attributes:
        seed, subtype: what it was drawn from.
        images: sequence (`contract.SEQUENCES`) -> float32 array of `options.shape`.
        labels: uint8 canonical labels (0..3), same shape.
        affine: 4x4 voxel -> world (mm) matrix, the same for images and labels.
        tissues: uint8 healthy-tissue classes under the tumour, same shape (0 background,
            1 CSF, 2 grey matter, 3 white matter, 4 deep grey nuclei; `synth_anatomy.TISSUE_NAMES`).
        params: the drawn phenotype (sizes in mm, fractions, location) and clinical values
            (age, idh_status, survival_months) plus measured volumes in ml.
    """

    seed: int
    subtype: str
    images: dict[str, np.ndarray]
    labels: np.ndarray
    affine: np.ndarray
    tissues: np.ndarray
    params: dict = field(default_factory=dict)


def synth_affine(options: SynthOptions = SynthOptions()) -> np.ndarray:
    """The 4x4 affine of `options`: spacing on the diagonal, x and y negated for LPS, rotated by
    `oblique_deg` about z, origin chosen so the volume's centre is at world (0, 0, 0)."""
    flip = np.array([-1.0, -1.0, 1.0]) if options.orientation == "LPS" else np.ones(3)
    t = np.deg2rad(options.oblique_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(flip * np.asarray(options.spacing, float))
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(options.shape) - 1) / 2)
    return affine


def _draw_phenotype(rng: np.random.Generator, subtype: str) -> dict:
    p: dict = {}
    for name, (mean, spread) in _PHENOTYPES[subtype].items():
        z = rng.standard_normal()
        value = mean * np.exp(spread * z) if name in _LOG_NORMAL else mean + spread * z
        p[name] = float(np.clip(value, *_LIMITS[name]))
    p["rim_mm"] = min(p["rim_mm"], 0.6 * p["radius_mm"])
    lobes, age, p_idh, _ = _CLINICAL[subtype]
    p["lobe"] = LOBES[int(rng.choice(len(LOBES), p=lobes))]
    p["hemisphere"] = "right" if rng.random() < 0.5 else "left"
    p["age"] = int(np.clip(round(rng.normal(age, 11)), 25, 85))
    p["idh_status"] = "mutant" if rng.random() < p_idh else "wildtype"
    return p


def synth_patient(seed: int, subtype: str, options: SynthOptions = SynthOptions()) -> SynthPatient:
    """Draw one patient of `subtype` (one of `contract.SUBTYPES`) from `seed`. About 0.5 s at the
    default size. Raises ValueError for an unknown subtype."""
    if subtype not in _PHENOTYPES:
        raise ValueError(f"unknown subtype {subtype!r}; known: {', '.join(SUBTYPES)}")
    rng = np.random.default_rng(seed)
    p = _draw_phenotype(rng, subtype)
    p["idh_status"] = idh_status(seed, subtype, p)  # its own stream: `rng`, hence the images, never see it
    grid = Grid.fitted(options.shape, options.spacing)
    tissue, semi = brain_tissues(rng, grid, p["age"])
    centre = tumour_centre(rng, semi, p["lobe"], 1 if p["hemisphere"] == "right" else -1,
                           p["radius_mm"] * 1.25 + 4)
    tumour = grow_tumour(rng, grid, tissue, centre, p)
    images = render(rng, grid, tissue, tumour, p, options.noise, options.bias)
    labels = np.zeros(options.shape, np.uint8)
    labels[tumour.box] = CANONICAL_OF_CLASS[tumour.classes]
    voxel_ml = float(np.prod(options.spacing)) / 1000
    counts = np.bincount(labels.ravel(), minlength=4)
    p.update(centre_mm=[round(float(c) * grid.scale, 2) for c in centre],
             whole_tumor_ml=float(counts[1:].sum() * voxel_ml), tumor_core_ml=float((counts[1] + counts[3]) * voxel_ml),
             enhancing_ml=float(counts[3] * voxel_ml), edema_ml=float(counts[2] * voxel_ml))
    median = _CLINICAL[subtype][3] * (1.8 if p["idh_status"] == "mutant" else 1.0)
    size = (max(p["whole_tumor_ml"] / grid.scale**3, 1.0) / 60) ** -0.25
    survival = median * size * np.exp(-0.015 * (p["age"] - 55) + 0.45 * rng.standard_normal())
    p["survival_months"] = round(float(np.clip(survival, 2, 60)), 1)
    if options.orientation == "LPS":
        images = {k: np.ascontiguousarray(v[::-1, ::-1]) for k, v in images.items()}
        labels, tissue = (np.ascontiguousarray(a[::-1, ::-1]) for a in (labels, tissue))
    images = {s: images[s] for s in SEQUENCES}
    return SynthPatient(seed, subtype, images, labels, synth_affine(options), tissue, p)


def nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A .nii.gz file's bytes, deterministic: qform/sform code 1, units mm, gzip mtime 0."""
    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=4, mtime=0)


def write_cohort(cohorts_dir: Path, cohort: str, n_patients: int, seed: int,
                 options: SynthOptions = SynthOptions()) -> Path:
    """Write `n_patients` synthetic patients to `<cohorts_dir>/<cohort>/` (BraTS 2021 naming,
    masks in BraTS labels 1/2/4) plus `clinical.csv`; return the cohort folder.

    Patient ids are `<cohort>-000`, `<cohort>-001`, ...; subtypes cycle through the four in an
    order shuffled by `seed`, so each has at least n // 4 patients. Existing files of the same
    names are replaced atomically; other files in the folder are left alone. About 1 s per
    patient at the default size.

    Raises:
        CohortNameError: `cohort` is not a safe cohort name.
        ValueError: `n_patients` < 1.
    """
    validate_cohort_name(cohort)
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    folder = Path(cohorts_dir) / cohort
    folder.mkdir(parents=True, exist_ok=True)
    order = [SUBTYPES[i] for i in np.random.default_rng(seed).permutation(len(SUBTYPES))]
    brats_lut = np.array([0, 1, 2, 4], np.uint8)
    rows = []
    for i in range(n_patients):
        pid = f"{cohort}-{i:03d}"
        patient_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        patient = synth_patient(patient_seed, order[i % len(order)], options)
        out = folder / pid
        out.mkdir(exist_ok=True)
        for seq, image in patient.images.items():
            write_bytes_atomic(out / f"{pid}_{BRATS_SUFFIX[seq]}.nii.gz", nifti_bytes(image, patient.affine))
        write_bytes_atomic(out / f"{pid}_seg.nii.gz", nifti_bytes(brats_lut[patient.labels], patient.affine))
        rows.append((pid, patient.subtype, patient.params["survival_months"], patient.params["idh_status"],
                     patient.params["age"]))
    table = pd.DataFrame(rows, columns=list(CLINICAL_COLUMNS))
    write_bytes_atomic(folder / "clinical.csv", table.to_csv(index=False, float_format="%.1f", lineterminator="\n").encode())
    return folder
