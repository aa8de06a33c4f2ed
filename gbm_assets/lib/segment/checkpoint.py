"""U-Net checkpoints on disk: one `.pt` file holding the architecture and the weights.

Written by `save_checkpoint` (atomically), read back by `load_checkpoint` as an eval-mode CPU
model; `weights_finite` inspects the weights without building the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from gbm_assets.lib.contract import MODEL_INPUTS
from gbm_assets.lib.preprocess.intensity import ZSCORE
from gbm_assets.lib.segment.unet import UNet
from gbm_assets.lib.store.files import write_atomic

TARGETS = ("binary", "regions")
"""What a U-Net predicts: one whole-tumour channel, or the nested regions of `regions.REGION_CHANNELS`."""


def architecture(in_channels: int, base: int, dropout: float, out_channels: int = 1, target: str = "binary") -> dict:
    """The constructor arguments that rebuild a `UNet` (stored in the checkpoint and as run params).

    A binary model's dict is the one checkpoints held before region models existed (no out_channels /
    target keys), so its checkpoint bytes do not change; a region model adds both."""
    arch = {"in_channels": int(in_channels), "base": int(base), "dropout": float(dropout)}
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target != "binary" or out_channels != 1:
        arch |= {"out_channels": int(out_channels), "target": target}
    return arch


def model_target(model: UNet) -> str:
    """"regions" for a multi-channel (region) U-Net, "binary" for a whole-tumour one."""
    return "regions" if getattr(model, "out_channels", 1) > 1 else "binary"


def save_checkpoint(path: str | Path, state_dict: Mapping[str, torch.Tensor], arch: Mapping, input_name: str,
                    intensity: Mapping[str, str] | None = None, spacing_mm: float | None = None) -> Path:  # fmt: skip
    """Write `{"architecture", "state_dict", "input"}` (and `"intensity"`, sequence -> the scaling the
    training patients were preprocessed with, and `"spacing_mm"`, their in-plane voxel size, when given) to `path`
    atomically (parents created)."""
    blob = {"architecture": dict(arch), "state_dict": dict(state_dict), "input": input_name}
    if intensity is not None:
        blob["intensity"] = dict(intensity)
    if spacing_mm is not None:
        blob["spacing_mm"] = float(spacing_mm)
    return write_atomic(path, lambda tmp: torch.save(blob, tmp))


def _record(blob: Mapping) -> tuple[dict[str, str], float | None]:
    intensity = dict(blob.get("intensity") or {s: ZSCORE for s in MODEL_INPUTS[blob["input"]]})
    return intensity, blob.get("spacing_mm")


def checkpoint_record(path: str | Path) -> tuple[dict[str, str], float | None]:
    """(sequence -> intensity scaling, in-plane voxel size in mm) the checkpoint's model was trained on: z-scored
    for every channel of its input when the checkpoint predates the intensity record (every model then was), None
    for the grid when it predates the grid record."""
    return _record(torch.load(path, map_location="cpu", weights_only=True))


def checkpoint_intensity(path: str | Path) -> dict[str, str]:
    """sequence -> intensity scaling the checkpoint's model was trained on (`checkpoint_record`)."""
    return checkpoint_record(path)[0]


def load_checkpoint(path: str | Path) -> UNet:
    """Rebuild the U-Net of a checkpoint written by `save_checkpoint` (eval mode, CPU), with `checkpoint_record`'s
    two records as attributes: `intensity` (sequence -> scaling) and `spacing_mm`, the in-plane grid it learnt on,
    which inference resamples to.

    Checkpoints without `out_channels` (all written before region models) are binary (one channel)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    arch = blob["architecture"]
    model = UNet(in_channels=arch["in_channels"], base=arch["base"], p=arch["dropout"], out_channels=int(arch.get("out_channels", 1)))
    model.load_state_dict(blob["state_dict"])
    model.intensity, model.spacing_mm = _record(blob)
    return model.eval()


def weights_finite(path: str | Path) -> tuple[bool, list[str]]:
    """(all finite, names of floating-point tensors holding NaN or inf) of a checkpoint's weights."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    bad = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    return not bad, bad


CHECKPOINT_ARTIFACT = "checkpoint"
"""The artifact folder of a U-Net's MLflow run that holds its checkpoint file."""


def registered_model_name(input_name: str) -> str:
    """The MLflow registered-model name of the U-Net for one model input."""
    return f"gbm-unet-{input_name}"


def logged_checkpoint(tracking_uri: str, run_id: str, dst: str | Path) -> Path:
    """Download the checkpoint a U-Net run logged (under `CHECKPOINT_ARTIFACT`) into `dst`; its path.

    Raises:
        FileNotFoundError: the run has no checkpoint file (the message names the run).
    """
    from gbm_assets.lib.store.tracking import download_run_artifacts

    folder = download_run_artifacts(tracking_uri, run_id, CHECKPOINT_ARTIFACT, dst)
    found = sorted(folder.glob("*.pt"))
    if not found:
        raise FileNotFoundError(f"MLflow run {run_id} has no checkpoint in its {CHECKPOINT_ARTIFACT!r} artifacts")
    return found[0]
