"""One patient's mask inference as a picklable task, for a worker process or a Dask worker.

The U-Net is loaded once per worker (`init_worker`, the pool's initializer; `model_at` caches it by
checkpoint path, so the in-process path loads it once too) and torch runs `threads` intra-op
threads per worker (cores / workers), so two workers on two cores do not each start two threads.
The content key of a patient: the bytes of its preprocessed files, the checkpoint's bytes, the
model name and version, and the inference and post-processing settings. Pure (no Dagster).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gbm_assets.lib.masks.native import save_native_mask
from gbm_assets.lib.masks.overview import Thumb, thumb
from gbm_assets.lib.masks.postprocess import postprocess_labels, postprocess_mask
from gbm_assets.lib.preprocess.grid import voxel_volume_ml
from gbm_assets.lib.preprocess.volumes import load_preprocessed
from gbm_assets.lib.store.keyed import content_key, folder_files

THUMB_FILE = "thumb.npz"
"""Beside each mask: the patient's overview panel (one axial slice), read back for the cohort picture."""

_MODELS: dict[str, object] = {}


@dataclass(frozen=True)
class MaskTask:
    """One patient: its preprocessed folder, where its mask goes, the checkpoint and the settings."""

    patient_id: str
    dir: str
    mask_path: str
    checkpoint: str
    model_input: str
    threshold: float
    min_component_mm3: float
    keep_largest: bool
    batch_size: int = 16
    model_name: str = ""
    model_version: str = ""
    code_version: str = ""


def model_at(checkpoint: str):
    """The U-Net of `checkpoint`, loaded once per process."""
    if checkpoint not in _MODELS:
        from gbm_assets.lib.segment.checkpoint import load_checkpoint

        _MODELS[checkpoint] = load_checkpoint(checkpoint)
    return _MODELS[checkpoint]


def init_worker(checkpoint: str, threads: int) -> None:
    """Pool initializer: `threads` torch threads in this worker, and the model loaded up front."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    model_at(checkpoint)


def segment_patient(task: MaskTask) -> dict:
    """Segment one patient: the native-grid mask and its thumb written; its row (mask_path, roi_scheme,
    voxels, volume_ml, empty).

    A binary model writes a 0/1 whole-tumour mask (roi_scheme "binary"); a region model writes canonical
    labels 0-3 (`postprocess_labels`, roi_scheme "canonical"), so radiomics and tumor_burden give rows
    for every region it predicts. voxels counts the whole tumour (label > 0) either way."""
    patient = load_preprocessed(Path(task.dir))
    mask = patient_mask(model_at(task.checkpoint), patient, task.model_input, task.threshold, task.min_component_mm3,
                        task.keep_largest, task.batch_size)  # fmt: skip
    regions = mask.dtype != bool  # canonical labels from a region model; a binary model gives a bool mask
    voxels = int((save_native_mask(mask, patient.transform, Path(task.mask_path)) > 0).sum())
    truth = None if patient.labels is None else patient.labels > 0
    save_thumb(thumb(task.patient_id, patient.images[0], mask > 0, truth), thumb_path(task.mask_path))
    return {"patient_id": task.patient_id, "status": "ok", "problems": "", "mask_path": task.mask_path,
            "roi_scheme": "canonical" if regions else "binary", "voxels": voxels,
            "volume_ml": float(voxels * voxel_volume_ml(patient.transform.native_affine)), "empty": voxels == 0}  # fmt: skip


def patient_mask(model, patient, model_input: str, threshold: float, min_component_mm3: float, keep_largest: bool,
                 batch_size: int = 16) -> np.ndarray:
    """One preprocessed patient's post-processed prediction on its preprocessed grid: canonical labels 0-3 (uint8,
    `postprocess_labels`) from a region model, a bool whole-tumour mask (`postprocess_mask`) from a binary one."""
    from gbm_assets.lib.segment.inference import predict_volume

    prob = predict_volume(model, patient, model_input, batch_size=batch_size)
    clean = postprocess_labels if prob.ndim == 4 else postprocess_mask  # (3, X, Y, Z): whole tumour, core, enhancing
    return clean(prob, patient.spacing, threshold, min_component_mm3, keep_largest)


def mask_key(task: MaskTask) -> tuple[str, str]:
    """(patient id, content key): preprocessed files' and checkpoint's bytes, model and settings."""
    params = {k: v for k, v in asdict(task).items() if k not in ("patient_id", "dir", "mask_path", "checkpoint")}
    return task.patient_id, content_key({**folder_files(task.dir), "checkpoint": task.checkpoint}, params)


def thumb_path(mask_path: str) -> Path:
    return Path(mask_path).with_name(THUMB_FILE)


def mask_outputs(row: dict) -> list[str]:
    """The files a segmented patient wrote (checked before its record is reused)."""
    return [row["mask_path"], str(thumb_path(row["mask_path"]))]


def save_thumb(panel: Thumb, path: Path) -> None:
    """Write a `Thumb` as .npz (atomically), so a reused patient's panel needs no inference."""
    from gbm_assets.lib.store.files import write_atomic

    arrays = {"image": panel.image, "pred": panel.pred, "slice_index": panel.slice_index, "voxels": panel.voxels}
    arrays |= {} if panel.truth is None else {"truth": panel.truth}
    arrays |= {} if panel.dice is None else {"dice": panel.dice}

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)

    write_atomic(path, write)


def load_thumb(patient_id: str, path: str | Path) -> Thumb:
    """The `Thumb` that `save_thumb` wrote."""
    with np.load(path) as data:
        return Thumb(str(patient_id), data["image"], data["pred"], data.get("truth"),
                     int(data["slice_index"]), int(data["voxels"]), float(data["dice"]) if "dice" in data else None)  # fmt: skip
