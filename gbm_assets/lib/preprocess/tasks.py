"""One patient's preprocessing as a picklable task (for a worker process or a Dask worker), and its
content key: the bytes of its image and label files, the label scheme, the settings and the code
version. Pure (no Dagster)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from gbm_assets.lib.preprocess.volumes import (
    PreprocessConfig,
    preprocess_patient,
    read_case,
    save_preprocessed,
)
from gbm_assets.lib.store.keyed import content_key, folder_files

PREPROCESSED_COLUMNS = [
    "cohort", "patient_id", "status", "problems", "dir", "has_labels",
    "shape_x", "shape_y", "shape_z", "spacing_x_mm", "spacing_y_mm", "spacing_z_mm",
]  # fmt: skip


@dataclass(frozen=True)
class PreprocessTask:
    """One patient: its image files (sequence -> path), labels (or None), where to write, the settings."""

    patient_id: str
    images: dict[str, str]
    labels: str | None
    label_scheme: str
    out_dir: str
    config: PreprocessConfig = field(default_factory=PreprocessConfig)
    code_version: str = ""
    """The preprocessing code's version, part of the key (changed code recomputes)."""


def preprocess_task(task: PreprocessTask) -> dict:
    """Read, preprocess and write one patient; its `PREPROCESSED_COLUMNS` row (without cohort)."""
    images, label_img = read_case(task.images, task.labels, task.label_scheme)
    patient = preprocess_patient(images, label_img, task.config)
    save_preprocessed(patient, Path(task.out_dir))
    shape, spacing = patient.images.shape[1:], patient.spacing
    return {"patient_id": task.patient_id, "status": "ok", "problems": "", "dir": str(task.out_dir),
            "has_labels": patient.labels is not None,
            "shape_x": int(shape[0]), "shape_y": int(shape[1]), "shape_z": int(shape[2]),
            "spacing_x_mm": float(spacing[0]), "spacing_y_mm": float(spacing[1]), "spacing_z_mm": float(spacing[2])}  # fmt: skip


def preprocess_key(task: PreprocessTask) -> tuple[str, str]:
    """(patient id, content key) of a task: its files' bytes, label scheme, settings and code version."""
    params = {"label_scheme": task.label_scheme, "config": asdict(task.config), "code": task.code_version}
    return task.patient_id, content_key({**task.images, "labels": task.labels}, params)


def preprocess_outputs(row: dict) -> list[str]:
    """The files a finished patient wrote (checked before its record is reused)."""
    return list(folder_files(row["dir"]).values())
