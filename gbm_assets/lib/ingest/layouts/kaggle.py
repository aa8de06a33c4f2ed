"""The Kaggle LGG 2D layout (Buda et al. 2019, `lgg-mri-segmentation/kaggle_3m`).

`<cohort>/<patient>/<patient>_<n>.tif` are 3-channel axial slices (channel 0 pre-contrast T1,
1 FLAIR, 2 post-contrast T1), `<patient>_<n>_mask.tif` the binary FLAIR-abnormality mask (0/255).
Each channel, stacked over n = 1, 2, ... (taken as inferior to superior), is one 3D volume; the
slices carry no geometry, so the voxel size is cohort.yaml's `spacing_mm` (default 1 mm
isotropic) and the orientation is taken as LPS (image columns to the patient's left, rows to
posterior). The dataset fills a missing pre- or post-contrast channel with FLAIR: a channel equal
to FLAIR on every slice is treated as absent. This reader opens the slices to find such channels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gbm_assets.lib.ingest.layouts.base import CohortScan, LayoutReader, PatientFiles, SliceStack, register
from gbm_assets.lib.ingest.layouts.spec import COHORT_YAML, read_cohort_yaml, spacing_of

KAGGLE_CHANNELS = {0: "t1", 1: "flair", 2: "t1c"}
KAGGLE_DEFAULT_SPACING_MM = (1.0, 1.0, 1.0)
_SLICE = re.compile(r"^(?P<case>.+)_(?P<n>\d+)(?P<mask>_mask)?\.tiff?$", re.IGNORECASE)


def _slices(folder: Path) -> tuple[dict[int, Path], dict[int, Path]]:
    images: dict[int, Path] = {}
    masks: dict[int, Path] = {}
    for path in folder.iterdir():
        if (m := _SLICE.match(path.name)) and path.is_file():
            (masks if m["mask"] else images)[int(m["n"])] = path
    return images, masks


def _replaced_by_flair(files: list[Path]) -> set[int]:
    """Channels equal to FLAIR (channel 1) on every slice; empty when a slice cannot be read."""
    from PIL import Image

    same = {0, 2}
    try:
        for path in files:
            with Image.open(path) as img:
                arr = np.asarray(img)
            if arr.ndim != 3 or arr.shape[2] < 3:
                return set()
            same = {c for c in same if np.array_equal(arr[..., c], arr[..., 1])}
            if not same:
                break
    except Exception:  # validation reads every slice again and reports the unreadable one
        return set()
    return same


@register
class KaggleLggLayout(LayoutReader):
    name = "kaggle_lgg"

    @classmethod
    def detect(cls, cohort_dir: Path) -> bool:
        return any(d.is_dir() and next(d.glob("*_mask.tif"), None) is not None for d in cohort_dir.iterdir())

    def scan(self, cohort_dir: Path) -> CohortScan:
        spacing = spacing_of(read_cohort_yaml(cohort_dir), KAGGLE_DEFAULT_SPACING_MM, cohort_dir / COHORT_YAML)
        patients = []
        for folder in sorted(d for d in cohort_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            slices, masks = _slices(folder)
            order = sorted(slices)
            problems: list[str] = []
            if order and order != list(range(order[0], order[0] + len(order))):
                gaps = sorted(set(range(order[0], order[-1] + 1)) - set(order))
                problems.append(f"slice files missing in {folder}: numbers {gaps[:10]}")
            if masks and sorted(masks) != order:
                problems.append(f"mask slices {sorted(set(order) ^ set(masks))[:10]} do not pair with image slices in {folder}")
            files = tuple(slices[n] for n in order)
            absent = _replaced_by_flair(list(files)) if files else set()
            images = {seq: SliceStack(files, c, spacing) for c, seq in KAGGLE_CHANNELS.items() if files and c not in absent}
            labels = SliceStack(tuple(masks[n] for n in order if n in masks), None, spacing) if masks else None
            problems = [*self.missing(images, folder), *problems]
            patients.append(PatientFiles(folder.name, images, labels, "binary", tuple(problems)))
        return CohortScan(self.name, patients)
