"""One patient's tumour location: register, map each ROI's labels to the template, tabulate. Pure.

`locate_patient` returns the patient's rows of the `tumor_location` table (`LOCATION_COLUMNS`):
per ROI source (ground_truth where the cohort has labels, predicted where `lesion_masks` has a
mask) x region x level (structure / lobe) x name, each carrying the region's summary (volume
in template space, dominant lobe, hemisphere, MNI centroid) and the registration's quality.

A registration whose brain-mask Dice is below `floor` is implausible: the patient gets one row
per ROI source with status "failed", the metric and the Dice, and no location (never a guess).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import SimpleITK as sitk

from gbm_assets.lib.contract import SEQUENCES, label_scheme, to_canonical
from gbm_assets.lib.location.atlas import Atlas
from gbm_assets.lib.location.figure import location_png
from gbm_assets.lib.location.overlap import (
    OVERLAP_COLUMNS,
    SUMMARY_COLUMNS,
    region_overlap,
)
from gbm_assets.lib.location.register import (
    DEFAULT_SETTINGS,
    RegistrationSettings,
    register_to_template,
    warp_mask,
)

DEFAULT_DICE_FLOOR = 0.7
"""Brain-mask Dice below which a registration counts as failed (an affine fit of a whole brain
to MNI152 scores about 0.85-0.95; a gross failure falls well below 0.7)."""

QUALITY_COLUMNS = ["reference_sequence", "registration", "metric", "brain_dice", "seconds"]
LOCATION_COLUMNS = ["cohort", "patient_id", "roi_source", "status", "problem", *QUALITY_COLUMNS,
                    *SUMMARY_COLUMNS, *OVERLAP_COLUMNS[1:], "mask_path"]  # fmt: skip


@dataclass(frozen=True)
class Roi:
    """One patient mask to localise: its source, file and label scheme."""

    source: str
    path: str
    scheme: str


@dataclass
class PatientLocation:
    """`locate_patient`'s result: table rows, the quality, and a picture (None unless asked)."""

    rows: list[dict]
    brain_dice: float
    metric: float
    failed: bool
    picture: bytes | None = None


def reference_image(paths: dict[str, str]) -> tuple[str, str]:
    """(sequence, path) of the image to register: the first of t1, t1c, t2, flair present.

    Raises:
        ValueError: no image at all.
    """
    for sequence in SEQUENCES:
        if paths.get(sequence):
            return sequence, paths[sequence]
    raise ValueError("the patient has no image (t1, t1c, t2 or flair) to register")


def read_labels(roi: Roi, like: sitk.Image | None = None) -> sitk.Image:
    """A mask file as a canonical-label uint8 image (its own geometry; a trailing 4th axis of 1 dropped).

    Raises:
        RuntimeError (unreadable file), LabelError (a value `roi.scheme` does not define; path named).
    """
    image = sitk.ReadImage(roi.path)
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    labels = sitk.GetImageFromArray(to_canonical(sitk.GetArrayFromImage(image), roi.scheme, roi.path))
    labels.CopyInformation(image)
    return labels


def locate_patient(
    cohort: str, patient_id: str, images: dict[str, str], rois: list[Roi], atlas: Atlas, *,
    settings: RegistrationSettings = DEFAULT_SETTINGS, floor: float = DEFAULT_DICE_FLOOR, picture: bool = False,
) -> PatientLocation:  # fmt: skip
    """Register the patient's brain to the template and localise every ROI.

    Args:
        images: sequence -> image path (skull-stripped; 0 outside the brain).
        rois: the masks to localise; regions a mask's scheme cannot represent are left out.
        picture: also draw the first ROI's labels over the template (PNG bytes).

    Raises:
        ValueError (no image), RuntimeError (unreadable image or a failed optimiser). Not raised
        but returned as "failed" rows: a registration below `floor` (one row per ROI, with the
        metric and Dice), and an unreadable or mislabelled mask (that ROI's row names the file).
    """
    start = time.perf_counter()
    sequence, path = reference_image(images)
    registration = register_to_template(sitk.ReadImage(path, sitk.sitkFloat32), atlas.template, settings)
    quality = {"reference_sequence": sequence, "registration": registration.stage,
               "metric": registration.metric, "brain_dice": registration.brain_dice}  # fmt: skip
    base = {"cohort": cohort, "patient_id": patient_id}
    failed = not (registration.brain_dice >= floor)  # NaN fails too
    rows, png = [], None
    for roi in rois:
        head = base | {"roi_source": roi.source, "mask_path": roi.path} | quality
        if failed:
            problem = (f"registration implausible: brain-mask Dice {registration.brain_dice:.3f} < floor {floor} "
                       f"(metric {registration.metric:.4f}); location not recorded")  # fmt: skip
            rows.append(head | {"status": "failed", "problem": problem})
            continue
        try:
            labels = read_labels(roi)
        except (RuntimeError, OSError, ValueError) as exc:  # this ROI only; the patient's other ROIs proceed
            rows.append(head | {"status": "failed", "problem": f"{roi.path}: unreadable mask: {exc}".strip()})
            continue
        warped = sitk.GetArrayFromImage(warp_mask(labels, atlas.labels, registration.transform))
        overlap, summaries = region_overlap(warped, atlas)
        kept = label_scheme(roi.scheme).regions
        by_region = {s["region"]: s for s in summaries if s["region"] in kept}
        for summary in by_region.values():
            region_rows = [r for r in overlap if r["region"] == summary["region"]]
            status = "ok" if region_rows else "empty"
            problem = None if region_rows else "region empty in template space"
            rows.extend(head | summary | {"status": status, "problem": problem} | r for r in region_rows or [{}])
        if picture and png is None:
            template = sitk.Resample(atlas.template, atlas.labels, sitk.Transform(), sitk.sitkLinear, 0.0)
            png = location_png(template, warped, f"{cohort} / {patient_id} ({roi.source}) on MNI152")
    seconds = time.perf_counter() - start
    rows = [{c: r.get(c, math.nan if c in ("overlap_ml", "pct_of_region") else None) for c in LOCATION_COLUMNS} | {"seconds": seconds}
            for r in rows]  # fmt: skip
    return PatientLocation(rows, registration.brain_dice, registration.metric, failed, png)
