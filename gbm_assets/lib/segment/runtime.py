"""Where and how a U-Net runs: device, autocast, memory format, `torch.compile`, batches, inference.

Shared by the trainer (`train.py`) and inference. No orchestrator, no global state beyond the
torch thread count, which `torch_threads` sets and restores.

Batches come either from numpy arrays or lazy `SliceRows` views (lib/segment/dataset: rows read
from disk per batch) through a `DataLoader` (pinned memory on CUDA, `num_workers` processes
prefetching), or from tensors already on the device (`DeviceSlices`), which removes
host-to-device copies from the loop altogether.

`seeded_run` makes a training reproducible: same seed, thread count and machine, same weights.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from gbm_assets.lib.segment.unet import UNet

__all__ = [
    "DeviceSlices",
    "autocast",
    "batch_source",
    "compiled_logits",
    "predict_slices",
    "randomised_batch",
    "resolve_device",
    "resolve_switch",
    "seeded_run",
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


@contextlib.contextmanager
def seeded_run(seed: int, cuda_devices: Sequence[int] = ()) -> Iterator[None]:
    """Seed torch, numpy's and Python's global RNGs and turn on deterministic algorithms for the block.

    Every global state touched is restored afterwards (torch's RNG through `torch.random.fork_rng`,
    the legacy numpy and `random` states, the deterministic-algorithms flag), so a caller's own
    random streams do not depend on whether it trained. Deterministic algorithms only warn where an
    op has no deterministic implementation (`warn_only=True`); on CPU they change no result.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    was_deterministic, was_warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=list(cuda_devices)):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
            np.random.set_state(np_state)
            random.setstate(py_state)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: numpy's and Python's RNGs in a worker follow torch's worker seed.

    torch seeds each worker with base_seed + worker_id, base_seed drawn from the (seeded) torch RNG,
    so a worker that ever draws a random number draws the same one in every run."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def randomised_batch(xb: torch.Tensor, yb: torch.Tensor, seed: int, epoch: int, batch: int,
                     scalings: tuple[str, ...] = ()) -> torch.Tensor:
    """Domain randomisation (`lib/synth/randomise.randomise_batch`) of one training batch, on the host,
    drawn from `default_rng([seed, epoch, batch])`: the same batch of the same epoch always gets the same
    draws, whatever the workers or device. yb: (N, 1, H, W) canonical labels (per-tissue intensities);
    `scalings` each channel's intensity scaling, which the randomised slices keep (empty: z-scored)."""
    from gbm_assets.lib.synth.randomise import randomise_batch

    labels = yb[:, 0].round().to(torch.uint8).cpu().numpy()
    out, _ = randomise_batch(np.random.default_rng([seed, epoch, batch]), xb.float().cpu().numpy(), labels, scalings=scalings)
    return torch.from_numpy(out).to(xb.device)


def spatial_batch(xb: torch.Tensor, yb: torch.Tensor, seed: int, epoch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random zoom and rotation (`lib/segment/spatial.random_affine`) of one training batch and its labels, drawn
    from `default_rng([seed, epoch, batch, 1])`: reproducible per batch, independent of the other draws."""
    from gbm_assets.lib.segment.spatial import random_affine

    return random_affine(xb, yb, np.random.default_rng([seed, epoch, batch, 1]))


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
    """Batch i = rows `batches[i]` of x (and y), read from arrays or lazy views as float32 tensors."""

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

    def __init__(self, x: np.ndarray, y: np.ndarray | None, device: torch.device, chunk: int = 512):
        """Copied `chunk` rows at a time: host memory holds one chunk, never the whole array (x may be lazy)."""
        self.x = torch.empty((len(x), *x.shape[1:]), dtype=torch.float32, device=device)
        self.y = None if y is None else torch.empty((len(x), 1, *x.shape[-2:]), dtype=torch.uint8, device=device)
        for start in range(0, len(x), chunk):
            stop = min(start + chunk, len(x))
            self.x[start:stop] = torch.from_numpy(np.ascontiguousarray(x[start:stop], dtype=np.float32))
            if y is not None:
                y8 = np.asarray(y[start:stop]).reshape(stop - start, 1, *x.shape[-2:]).astype(np.uint8)
                self.y[start:stop] = torch.from_numpy(y8)

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
    # no `generator`: each loader draws its workers' base seed from the global torch RNG (seeded by
    # the trainer), as it always did, so batches, dropout and weights stay those of earlier versions
    loader = torch.utils.data.DataLoader(_Batches(x, y, batches), batch_size=None, shuffle=False, num_workers=workers,
                                         pin_memory=device.type == "cuda", worker_init_fn=seed_worker if workers else None)  # fmt: skip
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
        (N, H, W) float32 probabilities in [0, 1]; (0, H, W) for no slices. A region model
        (`out_channels` R > 1) gives (N, R, H, W), one channel per region.
    """
    device = next(model.parameters()).device
    fmt = memory_format(resolve_switch(channels_last, device))
    model.to(memory_format=fmt)
    forward = compiled_logits(model, resolve_switch(compile, device))
    was_training = model.training
    model.eval()
    regions = getattr(model, "out_channels", 1)
    out = torch.empty((len(x), *(() if regions == 1 else (regions,)), *x.shape[-2:]), dtype=torch.float32, device=device)
    batches = [np.arange(i, min(i + batch_size, len(x))) for i in range(0, len(x), batch_size)]
    try:
        with torch.inference_mode():
            for idx, (xb, _) in zip(batches, batch_source(x, None, batches, 0, device)):
                with autocast(device):
                    logits = forward(xb.contiguous(memory_format=fmt))
                probs = torch.sigmoid(logits.float())
                out[idx[0]:idx[-1] + 1] = probs[:, 0] if regions == 1 else probs
    finally:
        model.train(was_training)
    return out.cpu().numpy()
