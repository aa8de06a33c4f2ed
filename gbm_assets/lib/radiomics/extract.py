"""PyRadiomics features per patient, sequence and region, as long rows; problems become exclusions.

Three layers:
- `extract_roi`: one image + one mask in memory -> {"<feature_class>_<feature>": value}.
- `extract_patient`: one `PatientTask` (NIfTI paths) -> long rows, exclusion rows, seconds. Reads
  each file once, builds each region's binary mask from the canonical labels, computes shape once
  per (roi_source, region) and the intensity classes once per sequence.
- `extract_cohort` (in `cohort.py`): many tasks on the compute backend (local pool or Dask) -> three DataFrames.

Row conventions:
- Feature rows (`FEATURE_COLUMNS`): shape features belong to the ROI, not to an image, so they
  appear once per roi_source x region with sequence = `SHAPE_SEQUENCE` ("any").
- Exclusion rows (`EXCLUSION_COLUMNS`): "any" in roi_source / region / sequence means the reason
  applies to all of them (e.g. an unreadable image excludes that sequence for every ROI).
- Derived image types (if a parameter file enables LoG or Wavelet) keep their prefix in
  feature_class ("wavelet-LLH_glcm"); the Original image's prefix is dropped ("glcm").
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from gbm_assets.lib.contract import (
    LABEL_NAMES,
    REGIONS,
    ROI_SOURCES,
    SEQUENCES,
    label_scheme,
)
from gbm_assets.lib.radiomics.geometry import (
    geometry_mismatch,
    intensity_problem,
    precrop_is_exact,
    read_volume,
)
from gbm_assets.lib.radiomics.params import file_sha256, load_params

ANY = "any"
SHAPE_SEQUENCE = ANY
"""The `sequence` value of shape rows (shape is a property of the ROI, computed once)."""
FEATURE_COLUMNS = ("cohort", "patient_id", "sequence", "roi_source", "region", "feature_class", "feature", "value")
EXCLUSION_COLUMNS = ("cohort", "patient_id", "roi_source", "region", "sequence", "reason")
TIMING_COLUMNS = ("cohort", "patient_id", "seconds", "features", "exclusions")


@dataclass(frozen=True)
class PatientTask:
    """One patient's extraction, picklable for a worker process.

    Attributes:
        cohort, patient_id: copied into every row.
        images: sequence name ("t1", "t1c", "t2", "flair") -> NIfTI path.
        rois: roi_source ("ground_truth" | "predicted") -> NIfTI path of a canonical-label mask
            (0 background, 1 necrotic core, 2 edema, 3 enhancing) on the images' grid.
        params: PyRadiomics parameter file (validated by `extract_cohort` before any work).
        regions: regions to extract; None = every region of `contract.REGIONS`.
        roi_schemes: roi_source -> label scheme the mask was converted from; regions that scheme
            cannot represent (e.g. tumor_core from HD-GLIO) are skipped. Default "canonical".
    """

    cohort: str
    patient_id: str
    images: Mapping[str, str]
    rois: Mapping[str, str]
    params: str
    regions: tuple[str, ...] | None = None
    roi_schemes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [r for r in (self.regions or ()) if r not in REGIONS]
        if unknown:
            raise KeyError(f"unknown regions {unknown}; known: {', '.join(REGIONS)}")

    def regions_for(self, roi_source: str) -> tuple[str, ...]:
        """The requested regions that `roi_source`'s label scheme supports, in REGIONS order."""
        supported = label_scheme(self.roi_schemes.get(roi_source, "canonical")).regions
        wanted = tuple(REGIONS) if self.regions is None else self.regions
        return tuple(r for r in REGIONS if r in wanted and r in supported)


def _feature_name(key: str) -> str:
    return key.removeprefix("original_")


def extract_roi(
    extractor, image: sitk.Image, mask: sitk.Image, *, label: int = 1, compute_shape: bool
) -> dict[str, float]:
    """PyRadiomics features of one ROI in one image.

    Args:
        extractor: a configured `radiomics.featureextractor.RadiomicsFeatureExtractor` (not modified).
        image: 3D image; mask: 3D label image with exactly the image's geometry.
        label: the mask value of the ROI.
        compute_shape: False skips the shape classes (shape, shape2D), for the 2nd..nth image of
            the same ROI; the other enabled classes are computed either way.

    Returns:
        "<feature_class>_<feature>" -> float (e.g. "firstorder_Mean", "shape_MeshVolume");
        diagnostics_* entries are dropped.

    Raises:
        ValueError: PyRadiomics rejects the ROI (label absent, too small, geometry mismatch).
    """
    if not compute_shape and any(c.startswith("shape") for c in extractor.enabledFeatures):
        extractor = copy.copy(extractor)  # per-call copy: the caller's extractor keeps its classes
        extractor.enabledFeatures = {c: f for c, f in extractor.enabledFeatures.items() if not c.startswith("shape")}
    result = extractor.execute(image, mask, label=label)
    return {_feature_name(k): float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def _ordered(keys: Iterable[str], canonical: Sequence[str]) -> list[str]:
    keys = list(keys)
    return [k for k in canonical if k in keys] + sorted(k for k in keys if k not in canonical)


_EXTRACTORS: dict[tuple[str, str], object] = {}


def _extractor_for(params: str | Path):
    """One validated extractor per parameter file (path and content) per process."""
    path = Path(params).expanduser().resolve()
    key = (str(path), file_sha256(path))
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = load_params(path).extractor()
    return _EXTRACTORS[key]


@dataclass
class _Sink:
    """Collects one patient's feature and exclusion rows."""

    cohort: str
    patient_id: str
    rows: list[dict] = field(default_factory=list)
    exclusions: list[dict] = field(default_factory=list)

    def exclude(self, roi_source: str, region: str, sequence: str, reason: str) -> None:
        self.exclusions.append({"cohort": self.cohort, "patient_id": self.patient_id, "roi_source": roi_source,
                                "region": region, "sequence": sequence, "reason": reason})  # fmt: skip

    def add(self, roi_source: str, region: str, sequence: str, features: Mapping[str, float]) -> None:
        for name, value in features.items():
            feature_class, feature = name.rsplit("_", 1)
            self.rows.append({"cohort": self.cohort, "patient_id": self.patient_id,
                              "sequence": SHAPE_SEQUENCE if feature_class.startswith("shape") else sequence,
                              "roi_source": roi_source, "region": region, "feature_class": feature_class,
                              "feature": feature, "value": value})  # fmt: skip


def _read_mask(path: str, source: str, images: Mapping[str, tuple[sitk.Image, str]], sink: _Sink):
    """(labels (Z, Y, X), {sequence: image on the mask's grid}) or None, recording why not."""
    mask, error = read_volume(path)
    if error:
        sink.exclude(source, ANY, ANY, f"unreadable mask: {error}")
        return None
    labels = sitk.GetArrayFromImage(mask)
    unknown = [v for v in np.unique(labels).tolist() if v not in LABEL_NAMES]
    if unknown:
        sink.exclude(source, ANY, ANY, f"mask {path} holds non-canonical label values {unknown[:10]}")
        return None
    usable = {}
    for seq, (image, image_path) in images.items():
        reason = geometry_mismatch(image, mask, image_path, path)
        if reason:
            sink.exclude(source, ANY, seq, reason)
        else:
            usable[seq] = image
    return labels, usable


def _extract_region(extractor, labels: np.ndarray, images: Mapping[str, sitk.Image], source: str, region: str,
                    mask_path: str, sink: _Sink) -> None:  # fmt: skip
    """One region of one mask: size checks, then shape once and the other classes per sequence."""
    settings = extractor.settings
    min_voxels = max(2, int(settings.get("minimumROISize") or 0))  # PyRadiomics never takes one voxel
    min_dims = int(settings.get("minimumROIDimensions") or 1)
    wanted = sorted(REGIONS[region])
    roi = np.isin(labels, wanted)
    voxels = int(np.count_nonzero(roi))
    if voxels == 0:
        sink.exclude(source, region, ANY, f"region absent: no voxel with label {wanted} in {mask_path}")
        return
    box = ndimage.find_objects(roi.astype(np.uint8))[0]  # (Z, Y, X) slices
    dims = sum(s.stop - s.start > 1 for s in box)
    if voxels < min_voxels or dims < min_dims:
        sink.exclude(source, region, ANY, f"ROI below minimum size: {voxels} voxel(s) extending in {dims} "
                     f"dimension(s); the parameters ask for >= {min_voxels} voxels in >= {min_dims} dimensions")
        return
    if voxels == roi.size:  # PyRadiomics needs a background voxel (else "No labels found in this mask")
        sink.exclude(source, region, ANY, f"ROI covers the whole image ({voxels} voxels) in {mask_path}: "
                     "PyRadiomics needs background in the mask; is the segmentation degenerate or inverted?")
        return
    pad = int(settings.get("padDistance") or 0) if precrop_is_exact(extractor) else max(roi.shape)
    z, y, x = (slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(box, roi.shape))
    roi_mask = sitk.GetImageFromArray(roi[z, y, x].astype(np.uint8))
    shape_done = False
    for seq, image in images.items():
        reason = intensity_problem(sitk.GetArrayViewFromImage(image)[box][roi[box]], settings)
        if reason:
            sink.exclude(source, region, seq, reason)
            continue
        cropped = image[x.start : x.stop, y.start : y.stop, z.start : z.stop]
        roi_mask.CopyInformation(cropped)  # equal within tolerance -> exactly equal for SimpleITK
        try:
            features = extract_roi(extractor, cropped, roi_mask, label=1, compute_shape=not shape_done)
        except Exception as exc:  # PyRadiomics raises ValueError, RuntimeError, ... on ROIs it refuses
            sink.exclude(source, region, seq, f"pyradiomics failed: {type(exc).__name__}: {exc}")
            continue
        shape_done = shape_done or any(k.startswith("shape") for k in features)
        sink.add(source, region, seq, features)


def _normalise_once(extractor, images: dict[str, tuple[sitk.Image, str]]):
    """(extractor, images) with PyRadiomics' whole-image normalisation done once per image.

    With `normalize: true` PyRadiomics z-scores the whole image (`imageoperations.normalizeImage`)
    inside every `execute` call, before cropping. For the Original image without resampling, doing
    exactly that once here and handing PyRadiomics an extractor with normalisation off gives the
    same voxels, so the region crops stay exact and each image is normalised once, not once per
    region. Other configurations are returned unchanged (PyRadiomics normalises itself).
    """
    if not extractor.settings.get("normalize"):
        return extractor, images
    plain = copy.copy(extractor)
    plain.settings = {**extractor.settings, "normalize": False}
    if not precrop_is_exact(plain):
        return extractor, images
    from radiomics.imageoperations import normalizeImage

    return plain, {seq: (normalizeImage(image, **extractor.settings), path) for seq, (image, path) in images.items()}


def extract_patient(task: PatientTask) -> tuple[list[dict], list[dict], float]:
    """Features of every (roi_source, region, sequence) of one patient.

    Each NIfTI is read once. When exact (Original image only, no resampling), images and masks are
    cropped to the region's bounding box plus padDistance before PyRadiomics, which computes on
    that box anyway; `normalize: true` is then applied to each whole image once beforehand, as
    PyRadiomics would (`_normalise_once`).

    Returns:
        rows: dicts with `FEATURE_COLUMNS`, ordered roi_source, region, sequence.
        exclusions: dicts with `EXCLUSION_COLUMNS`: unreadable files, non-canonical mask values,
            mask/image geometry mismatch, region absent, ROI below the parameter file's minimum
            size or dimensions (a single voxel always), an ROI filling the whole image (no
            background), too many grey levels, PyRadiomics errors.
            These never raise; the other regions and sequences proceed.
        seconds: wall time of this call.
    """
    start = time.perf_counter()
    sink = _Sink(task.cohort, task.patient_id)
    extractor = _extractor_for(task.params)
    images = {}
    for seq in _ordered(task.images, SEQUENCES):
        image, error = read_volume(task.images[seq])
        if error:
            sink.exclude(ANY, ANY, seq, f"unreadable image: {error}")
        else:
            images[seq] = (image, task.images[seq])
    extractor, images = _normalise_once(extractor, images)
    for source in _ordered(task.rois, ROI_SOURCES):
        loaded = _read_mask(task.rois[source], source, images, sink)
        if loaded is not None:
            labels, usable = loaded
            for region in task.regions_for(source):
                _extract_region(extractor, labels, usable, source, region, task.rois[source], sink)
    return sink.rows, sink.exclusions, time.perf_counter() - start
