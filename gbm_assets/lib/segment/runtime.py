"""Where and how a U-Net runs: device, autocast, memory format, `torch.compile`, batches, inference.

Shared by the trainer (`train.py`) and inference. No orchestrator, no global state beyond the
torch thread count, which `torch_threads` sets and restores.

Batches come either from numpy arrays (memmaps welcome) through a `DataLoader` (pinned memory
on CUDA, `num_workers` processes prefetching), or from tensors already on the device
(`DeviceSlices`), which removes host-to-device copies from the loop altogether.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from gbm_assets.lib.segment.unet import UNet

__all__ = [
    "DeviceSlices",
    "autocast",
    "batch_source",
    "compiled_logits",
    "predict_slices",
    "resolve_device",
    "resolve_switch",
    "torch_threads",
]

DEVICE_DATA_FRACTION = 0.25
"""Slice arrays go to the GPU up front when they take at most this share of its free memory."""


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda if available else cpu; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_switch(value: bool | None, device: torch.device) -> bool:
    """A config switch: True / False as given; None = on for CUDA, off elsewhere."""
    return device.type == "cuda" if value is None else bool(value)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU (float32 there)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """`torch.set_num_threads(threads)` for the block (0 = leave as is); the old count is restored."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def compiled_logits(model: UNet, enabled: bool, mode: str = "default") -> Callable[[torch.Tensor], torch.Tensor]:
    """`model.forward_logits`, through `torch.compile` when enabled (cached on the model: compiled once).

    The compiled graph specialises on the model's train/eval mode and the batch shape; a change of
    either recompiles once (a trailing short batch, validation), within dynamo's cache limit.
    """
    if not enabled:
        return model.forward_logits
    cache = model.__dict__.setdefault("_compiled_logits", {})
    if mode not in cache:
        cache[mode] = torch.compile(model.forward_logits, mode=None if mode == "default" else mode, dynamic=False)
    return cache[mode]


class _Batches(torch.utils.data.Dataset):
    """Batch i = rows `batches[i]` of x (and y), read from (memmapped) arrays as float32 tensors."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, batches: list[np.ndarray]):
        self.x, self.y, self.batches = x, y, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches[i]
        xb = torch.from_numpy(np.asarray(self.x[idx], dtype=np.float32))
        if self.y is None:
            return xb, torch.empty(0)
        yb = np.asarray(self.y[idx]).reshape(len(idx), 1, *xb.shape[-2:])
        return xb, torch.from_numpy(yb.astype(np.float32))


class DeviceSlices:
    """Slices (and masks) copied to the device once; batches are index gathers there, no host copies.

    x: (N, C, H, W) float32 on the device; y: (N, 1, H, W) uint8 (or None).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None, device: torch.device):
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        self.y = None
        if y is not None:
            y8 = np.ascontiguousarray(np.asarray(y).reshape(len(x), 1, *x.shape[-2:]), dtype=np.uint8)
            self.y = torch.from_numpy(y8).to(device)

    @staticmethod
    def fits(x: np.ndarray, device: torch.device) -> bool:
        """Whether x (float32) and its uint8 masks take at most DEVICE_DATA_FRACTION of the free memory."""
        if device.type != "cuda":
            return False
        free, _ = torch.cuda.mem_get_info(device)
        return x.size * 5 <= DEVICE_DATA_FRACTION * free

    def batches(self, batches: list[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in batches:
            it = torch.from_numpy(idx).to(self.x.device, non_blocking=True)
            yield self.x[it], (self.y[it].float() if self.y is not None else torch.empty(0))


def batch_source(x, y, batches: list[np.ndarray], workers: int, device: torch.device,
                 on_device: DeviceSlices | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x batch, y batch) float32 tensors on `device`, from `on_device` when given, else a DataLoader.

    The DataLoader pins memory on CUDA (copies are then asynchronous) and prefetches with
    `workers` processes; y batches are (B, 1, H, W), empty when y is None.
    """
    if on_device is not None:
        yield from on_device.batches(batches)
        return
    loader = torch.utils.data.DataLoader(_Batches(x, y, batches), batch_size=None, shuffle=False,
                                         num_workers=workers, pin_memory=device.type == "cuda")  # fmt: skip
    for xb, yb in loader:
        yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def predict_slices(model: UNet, x: np.ndarray, batch_size: int = 16, *, channels_last: bool | None = None,
                   compile: bool | None = None) -> np.ndarray:  # fmt: skip
    """Probabilities for every slice, in eval mode under `torch.inference_mode`.

    Runs on the model's device (bf16 autocast on CUDA); the model's train/eval mode is restored.
    On CUDA the probabilities stay on the device until the end (one copy back, no per-batch sync).

    Args:
        model: a `UNet` (any module with `forward_logits` returning (N, 1, H, W) logits).
        x: (N, C, H, W) slices, numpy (memmaps are read batch by batch).
        batch_size: slices per forward pass.
        channels_last: run in channels_last memory format (None: on CUDA only). The model is
            converted in place (its weights' values do not change).
        compile: run through `torch.compile` (None: on CUDA only); compiled once per model.

    Returns:
        (N, H, W) float32 probabilities in [0, 1]; (0, H, W) for no slices.
    """
    device = next(model.parameters()).device
    fmt = memory_format(resolve_switch(channels_last, device))
    model.to(memory_format=fmt)
    forward = compiled_logits(model, resolve_switch(compile, device))
    was_training = model.training
    model.eval()
    out = torch.empty((len(x), *x.shape[-2:]), dtype=torch.float32, device=device)
    batches = [np.arange(i, min(i + batch_size, len(x))) for i in range(0, len(x), batch_size)]
    try:
        with torch.inference_mode():
            for idx, (xb, _) in zip(batches, batch_source(x, None, batches, 0, device)):
                with autocast(device):
                    logits = forward(xb.contiguous(memory_format=fmt))
                out[idx[0]:idx[-1] + 1] = torch.sigmoid(logits.float())[:, 0]
    finally:
        model.train(was_training)
    return out.cpu().numpy()
