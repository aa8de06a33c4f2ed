"""Run a 2D U-Net over every axial slice of a preprocessed patient."""

from __future__ import annotations

import numpy as np

from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.preprocess.volumes import PreprocessedPatient
from gbm_assets.lib.segment.grid import in_plane, on_model_grid
from gbm_assets.lib.segment.runtime import predict_slices
from gbm_assets.lib.segment.unet import UNet


def model_input(patient: PreprocessedPatient, input_name: str) -> np.ndarray:
    """(Z, C, X, Y) float32 slices of the channels `input_name` needs.

    Raises:
        KeyError: the patient lacks a sequence the input needs (the message names it).
    """
    channels = []
    for seq in MODEL_INPUTS[input_name]:
        if seq not in patient.sequences:
            raise KeyError(f"input {input_name!r} needs sequence {seq!r}, which the patient lacks")
        channels.append(patient.sequences.index(seq))
    return np.ascontiguousarray(patient.images[channels].transpose(3, 0, 1, 2))


def predict_volume(model: UNet, patient: PreprocessedPatient, input_name: str, batch_size: int = 16, *,
                   channels_last: bool | None = None, compile: bool | None = None) -> np.ndarray:  # fmt: skip
    """(X, Y, Z) float32 lesion probabilities on the preprocessed grid; (R, X, Y, Z) for a region model.

    A model that records the in-plane grid it learnt on (`spacing_mm`, set by `load_checkpoint`) sees the slices
    resampled to that grid (`grid.on_model_grid`); the probabilities come back on the patient's.
    channels_last / compile: the inference switches of `predict_slices` (None: on CUDA only).
    """
    def predict(x: np.ndarray) -> np.ndarray:
        return predict_slices(model, x, batch_size=batch_size, channels_last=channels_last, compile=compile)

    prob = on_model_grid(predict, model_input(patient, input_name), in_plane(patient.spacing), getattr(model, "spacing_mm", None))
    return np.moveaxis(prob, 0, -1)
