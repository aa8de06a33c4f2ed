"""A pure U-Net trainer on 2D slices: numpy arrays in, best weights and history out.

No orchestrator here: callers pass arrays (numpy memmaps welcome, only batches are read) and an
optional `on_epoch` callback for their own logging. Training is Adam on `bce_dice_loss`; the
kept weights are those of the epoch with the best validation Dice.

Devices: CUDA with bf16 autocast when available (`device="auto"`), CPU float32 otherwise. On
CUDA by default (each a `TrainConfig` switch): `torch.compile`, channels_last, fused Adam, the
slice arrays copied to the GPU once when they fit (else pinned, prefetched batches), and no
host-device sync inside an epoch (losses and validation Dice accumulate on the device).
A run is deterministic given `seed` (same torch build, thread count and machine): torch, numpy
and Python are seeded and deterministic algorithms are on inside `runtime.seeded_run` (the
caller's RNG states are restored afterwards), and batch order and augmentation come from one
`numpy.random.Generator`. Slice arrays may be lazy `SliceRows` views (lib/segment/dataset): only
the rows of a batch are ever in memory, whatever the number of patients.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.region_loss import batch_targets, region_loss, slice_dice
from gbm_assets.lib.segment.regions import REGION_CHANNELS
from gbm_assets.lib.segment.runtime import (DeviceSlices, autocast, batch_source, compiled_logits, memory_format,
                                            predict_slices, randomised_batch, resolve_device, resolve_switch,
                                            seeded_run, spatial_batch, torch_threads)
from gbm_assets.lib.segment.unet import UNet

__all__ = ["TrainConfig", "TrainResult", "predict_slices", "resolve_device", "train_unet"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        base: U-Net width of the first level (the study: 64).
        epochs: passes over the training slices.
        batch_size: slices per step (a trailing batch of one slice is skipped: BatchNorm).
        lr: Adam learning rate.
        seed: seeds weights, dropout, batch order and augmentation.
        augment: random horizontal / vertical flips (p = 0.5 each) and an intensity
            x * U(0.9, 1.1) + U(-0.1, 0.1) per slice, in the input's units (inputs are
            expected normalised to about unit variance), applied on the batch tensors.
        num_workers: DataLoader worker processes reading batches (0: in the main process).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        dropout: Dropout2d probability in every ConvBlock (the study: 0.3).
        threshold: probability above which a pixel counts as lesion for validation Dice.
        progress: show a tqdm bar; None lets tqdm decide (hidden when stderr is not a tty).
        schedule: learning rate over the run: "constant" (`lr` throughout), "onecycle"
            (`OneCycleLR`, peak `lr`) or "cosine" (cosine decay from `lr` to 0), stepped per batch.
        compile: `torch.compile` the forward pass (None: on CUDA, off on CPU).
        compile_mode: `torch.compile` mode ("default", "max-autotune-no-cudagraphs", ...).
        channels_last: channels_last memory format (None: on CUDA, off on CPU).
        fused_adam: fused Adam kernel (None: on CUDA; CPU uses the foreach implementation).
        data_on_device: copy the slice arrays to the device once (None: on CUDA when they fit in
            a quarter of its free memory); otherwise batches are read (and pinned on CUDA) per step.
        threads: `torch.set_num_threads` during training (0: leave as is; restored afterwards).
        target: "binary" (one whole-tumour channel, `bce_dice_loss`) or "regions" (the nested
            `REGION_CHANNELS`, `region_loss`, best epoch by validation Dice averaged over regions);
            "regions" needs canonical labels as y.
        randomise: domain randomisation (`lib/synth/randomise`) of every training batch (never
            validation), drawn from `default_rng([seed, epoch, batch index])`; y must hold canonical
            labels for its per-tissue intensities.
        spatial: random in-plane zoom and rotation of training slices with their labels (`lib/segment/spatial`),
            drawn like `randomise` (after it, so intensities follow the tissue labels of the unmoved slice).
        channel_scalings: each input channel's intensity scaling (`zscore` or `percentile`,
            `lib/preprocess/intensity`), which `randomise` gives back to the slices it redraws; empty: z-scored.
    """

    base: int = 64
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    augment: bool = True
    num_workers: int = 0
    device: str = "auto"
    dropout: float = 0.3
    threshold: float = 0.5
    progress: bool | None = None
    schedule: str = "constant"
    compile: bool | None = None
    compile_mode: str = "default"
    channels_last: bool | None = None
    fused_adam: bool | None = None
    data_on_device: bool | None = None
    threads: int = 0
    target: str = "binary"
    randomise: bool = False
    spatial: bool = False
    channel_scalings: tuple[str, ...] = ()


SCHEDULES = ("constant", "onecycle", "cosine")


@dataclass
class TrainResult:
    """What `train_unet` returns.

    Attributes:
        model: the U-Net with the best epoch's weights loaded, in eval mode, on the training device.
        best_state: CPU copy of the best epoch's `state_dict`.
        best_epoch: 1-based epoch whose weights were kept.
        best_val_dice: that epoch's validation Dice (see `train_unet`).
        history: one dict per epoch: epoch (1-based), train_loss, val_loss, val_dice, val_dice_whole_tumor,
            seconds (wall time of the epoch, validation included), slices_per_s (training
            slices per second of the training phase alone).
        config: the settings used, as a dict; device: the device used, e.g. "cpu".
    """

    model: UNet
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_dice: float
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    device: str = "cpu"


def _check(x: np.ndarray, y: np.ndarray, name: str, min_slices: int) -> None:
    if x.ndim != 4 or x.shape[-1] % 16 or x.shape[-2] % 16:
        raise ValueError(f"{name}_x must be (N, C, H, W) with H, W multiples of 16, got {x.shape}")
    if y.shape not in ((x.shape[0], *x.shape[2:]), (x.shape[0], 1, *x.shape[2:])):
        raise ValueError(f"{name}_y must be (N, H, W) or (N, 1, H, W) matching {name}_x {x.shape}, got {y.shape}")
    if x.shape[0] < min_slices:
        raise ValueError(f"{name}_x needs at least {min_slices} slices, got {x.shape[0]}")


def _augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice random flips (x and y together) and intensity scale/shift (x only); (N, C, H, W).

    The draws travel to the device as one small pinned tensor, copied without blocking the host."""
    n = x.shape[0]
    flips = rng.random((2, n)) < 0.5
    draws = np.stack([*flips, rng.uniform(0.9, 1.1, n), rng.uniform(-0.1, 0.1, n)]).astype(np.float32)
    params = torch.from_numpy(draws)
    if x.device.type == "cuda":
        params = params.pin_memory()
    params = params.to(x.device, non_blocking=True).view(4, n, 1, 1, 1)
    flip_h, flip_v, scale, shift = params[0] > 0.5, params[1] > 0.5, params[2], params[3]
    x, y = torch.where(flip_h, x.flip(-1), x), torch.where(flip_h, y.flip(-1), y)
    x, y = torch.where(flip_v, x.flip(-2), x), torch.where(flip_v, y.flip(-2), y)
    return x * scale + shift, y


def _validate(forward, x, y, cfg: TrainConfig, device, on_device: DeviceSlices | None, fmt) -> tuple[float, float, float]:
    """(mean val loss, mean per-slice hard Dice, that Dice on whole tumour = channel 0 alone) in eval mode; one sync."""
    batches = [np.arange(i, min(i + cfg.batch_size, len(x))) for i in range(0, len(x), cfg.batch_size)]
    cut = math.log(cfg.threshold / (1.0 - cfg.threshold))
    loss_sum = dice_sum = whole_sum = torch.zeros((), device=device)
    with torch.inference_mode():
        for xb, yb in batch_source(x, y, batches, cfg.num_workers, device, on_device):
            with autocast(device):
                logits = forward(xb.contiguous(memory_format=fmt))
            target = batch_targets(yb, cfg.target)
            loss_sum = loss_sum + _loss(logits, target, cfg.target) * len(xb)
            dice_sum = dice_sum + slice_dice(logits, target, cut).sum()
            whole_sum = whole_sum + slice_dice(logits[:, :1], target[:, :1], cut).sum()
    loss, dice, whole = torch.stack([loss_sum, dice_sum, whole_sum]).tolist()
    return loss / len(x), dice / len(x), whole / len(x)


def _loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return region_loss(logits, target) if kind == "regions" else bce_dice_loss(logits, target)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """None for "constant"; OneCycle (peak `lr`) or cosine decay to 0 over every step (`train_unet` checked the name)."""
    steps = max(total_steps, 1)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if cfg.schedule == "cosine" else None


def train_unet(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the study's U-Net on 2D slices and keep the epoch with the best validation Dice.

    Validation Dice is the mean over validation slices of the hard per-slice Dice
    (probability > `config.threshold`), where a slice with empty prediction and empty truth
    scores 1.0 and one with exactly one of them empty scores 0.0. Ties keep the earlier epoch.
    Validation loss is `bce_dice_loss` averaged over batches, weighted by batch size.

    Args:
        train_x: (N, C, H, W) float32 (any real dtype, read per batch; memmaps and `SliceRows` are not copied).
        train_y: (N, H, W) or (N, 1, H, W) bool / uint8 masks, 1 = lesion, or canonical labels 0-3
            (needed by `config.target="regions"` and `config.randomise`; binary models train on label > 0).
        val_x: (M, C, H, W), as train_x.
        val_y: (M, H, W) or (M, 1, H, W), as train_y.
        config: `TrainConfig`; `in_channels` is taken from `train_x.shape[1]`.
        on_epoch: called after every epoch with that epoch's history dict.

    Returns:
        `TrainResult` with the best model, its state, the best epoch and the full history.
    """
    _check(train_x, train_y, "train", min_slices=2)  # BatchNorm needs two slices per training batch
    _check(val_x, val_y, "val", min_slices=1)
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    if config.target not in ("binary", "regions"):
        raise ValueError(f"target must be 'binary' or 'regions', got {config.target!r}")
    with torch_threads(config.threads):
        return _train(train_x, train_y, val_x, val_y, config, on_epoch)


def _train(train_x, train_y, val_x, val_y, config: TrainConfig, on_epoch) -> TrainResult:
    device = resolve_device(config.device)
    fmt = memory_format(resolve_switch(config.channels_last, device))
    rng = np.random.default_rng(config.seed)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    history: list[dict[str, float]] = []
    best_state, best_epoch, best_dice = None, 0, -1.0
    n, bs = len(train_x), config.batch_size
    on_device = config.data_on_device
    if on_device is None:
        on_device = DeviceSlices.fits(train_x, device) and DeviceSlices.fits(val_x, device)
    train_src = DeviceSlices(train_x, train_y, device) if on_device else None
    val_src = DeviceSlices(val_x, val_y, device) if on_device else None
    with seeded_run(config.seed, cuda_devices):
        out_channels = len(REGION_CHANNELS) if config.target == "regions" else 1
        model = UNet(train_x.shape[1], config.base, config.dropout, out_channels).to(device, memory_format=fmt)
        forward = compiled_logits(model, resolve_switch(config.compile, device), config.compile_mode)
        fused = resolve_switch(config.fused_adam, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True if fused else None)
        steps = len([i for i in range(0, n, bs) if n - i >= 2])
        scheduler = _scheduler(optimizer, config, steps * config.epochs)
        bar = tqdm(total=steps * config.epochs, disable=None if config.progress is None else not config.progress,
                   unit="step", leave=False)
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(n)
            batches = [np.sort(order[i:i + bs]) for i in range(0, n, bs) if n - i >= 2]
            seen, loss_sum = 0, torch.zeros((), device=device)
            model.train()
            bar.set_description(f"epoch {epoch}/{config.epochs}")
            for b, (xb, yb) in enumerate(batch_source(train_x, train_y, batches, config.num_workers, device, train_src)):
                if config.randomise:
                    xb = randomised_batch(xb, yb, config.seed, epoch, b, config.channel_scalings)
                if config.spatial:
                    xb, yb = spatial_batch(xb, yb, config.seed, epoch, b)
                if config.augment:
                    xb, yb = _augment(xb, yb, rng)
                with autocast(device):
                    logits = forward(xb.contiguous(memory_format=fmt))
                loss = _loss(logits, batch_targets(yb, config.target), config.target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.detach() * len(xb)
                seen += len(xb)
                bar.update(1)
            train_loss = loss_sum.item() / seen  # .item() syncs CUDA before the clock is read
            train_seconds = time.perf_counter() - t0
            model.eval()
            val_loss, val_dice, val_whole = _validate(forward, val_x, val_y, config, device, val_src, fmt)
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
                      "val_dice_whole_tumor": val_whole, "seconds": time.perf_counter() - t0, "slices_per_s": seen / train_seconds}
            history.append(record)
            if val_dice > best_dice:
                best_dice, best_epoch = val_dice, epoch
                best_state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
                              for k, v in model.state_dict().items()}  # fmt: skip
            bar.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{val_dice:.4f}")
            log.info(
                "epoch %d/%d train_loss=%.4f val_loss=%.4f val_dice=%.4f (best %.4f @ %d) %.1fs %.1f slices/s",
                epoch, config.epochs, train_loss, val_loss, val_dice, best_dice, best_epoch,
                record["seconds"], record["slices_per_s"],
            )
            if on_epoch is not None:
                on_epoch(dict(record))
        bar.close()
    if best_state is None:
        raise ValueError("config.epochs must be >= 1")
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, best_state, best_epoch, best_dice, history, asdict(config), str(device))
