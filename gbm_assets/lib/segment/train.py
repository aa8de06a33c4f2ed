"""A pure U-Net trainer on 2D slices: numpy arrays in, best weights and history out.

No orchestrator here: callers pass arrays (numpy memmaps welcome, only batches are read) and an
optional `on_epoch` callback for their own logging. Training is Adam on `bce_dice_loss`; the
kept weights are those of the epoch with the best validation Dice.

Devices: CUDA with bf16 autocast when available (`device="auto"`), CPU float32 otherwise.
On CPU a run is deterministic given `seed` (same torch build and thread count): the global torch
RNG is seeded inside `torch.random.fork_rng` (the caller's RNG state is restored afterwards) and
batch order and augmentation come from one `numpy.random.Generator`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.unet import UNet

__all__ = ["TrainConfig", "TrainResult", "train_unet", "predict_slices", "resolve_device"]

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


@dataclass
class TrainResult:
    """What `train_unet` returns.

    Attributes:
        model: the U-Net with the best epoch's weights loaded, in eval mode, on the training device.
        best_state: CPU copy of the best epoch's `state_dict`.
        best_epoch: 1-based epoch whose weights were kept.
        best_val_dice: that epoch's validation Dice (see `train_unet`).
        history: one dict per epoch: epoch (1-based), train_loss, val_loss, val_dice,
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


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda if available else cpu; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def _loader(x, y, batches, workers: int, device: torch.device) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        _Batches(x, y, batches), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def _check(x: np.ndarray, y: np.ndarray, name: str, min_slices: int) -> None:
    if x.ndim != 4 or x.shape[-1] % 16 or x.shape[-2] % 16:
        raise ValueError(f"{name}_x must be (N, C, H, W) with H, W multiples of 16, got {x.shape}")
    if y.shape not in ((x.shape[0], *x.shape[2:]), (x.shape[0], 1, *x.shape[2:])):
        raise ValueError(f"{name}_y must be (N, H, W) or (N, 1, H, W) matching {name}_x {x.shape}, got {y.shape}")
    if x.shape[0] < min_slices:
        raise ValueError(f"{name}_x needs at least {min_slices} slices, got {x.shape[0]}")


def _augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice random flips (x and y together) and intensity scale/shift (x only); (N, C, H, W)."""
    n = x.shape[0]
    flip_h, flip_v = (torch.from_numpy(rng.random((2, n, 1, 1, 1)) < 0.5)).to(x.device)
    scale = torch.from_numpy(rng.uniform(0.9, 1.1, (n, 1, 1, 1)).astype(np.float32)).to(x.device)
    shift = torch.from_numpy(rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32)).to(x.device)
    x, y = torch.where(flip_h, x.flip(-1), x), torch.where(flip_h, y.flip(-1), y)
    x, y = torch.where(flip_v, x.flip(-2), x), torch.where(flip_v, y.flip(-2), y)
    return x * scale + shift, y


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _validate(model, x, y, cfg: TrainConfig, device) -> tuple[float, float]:
    """(weighted mean val loss, mean per-slice hard Dice) in eval mode."""
    batches = [np.arange(i, min(i + cfg.batch_size, len(x))) for i in range(0, len(x), cfg.batch_size)]
    cut = math.log(cfg.threshold / (1.0 - cfg.threshold))
    loss_sum = dice_sum = torch.zeros((), device=device)
    model.eval()
    with torch.inference_mode():
        for xb, yb in _loader(x, y, batches, cfg.num_workers, device):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with _autocast(device):
                logits = model.forward_logits(xb)
            loss_sum = loss_sum + bce_dice_loss(logits, yb) * len(xb)
            pred, truth = logits.float() > cut, yb > 0.5
            inter = (pred & truth).sum((1, 2, 3))
            denom = pred.sum((1, 2, 3)) + truth.sum((1, 2, 3))
            dice = torch.where(denom == 0, 1.0, 2.0 * inter / denom.clamp(min=1))
            dice_sum = dice_sum + dice.sum()
    return loss_sum.item() / len(x), dice_sum.item() / len(x)


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
        train_x: (N, C, H, W) float32 (any real dtype, read per batch; memmaps are not copied).
        train_y: (N, H, W) or (N, 1, H, W) bool / uint8 masks, 1 = lesion.
        val_x: (M, C, H, W), as train_x.
        val_y: (M, H, W) or (M, 1, H, W), as train_y.
        config: `TrainConfig`; `in_channels` is taken from `train_x.shape[1]`.
        on_epoch: called after every epoch with that epoch's history dict.

    Returns:
        `TrainResult` with the best model, its state, the best epoch and the full history.
    """
    _check(train_x, train_y, "train", min_slices=2)  # BatchNorm needs two slices per training batch
    _check(val_x, val_y, "val", min_slices=1)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    history: list[dict[str, float]] = []
    best_state, best_epoch, best_dice = None, 0, -1.0
    n, bs = len(train_x), config.batch_size
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        model = UNet(train_x.shape[1], config.base, config.dropout).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps = len([i for i in range(0, n, bs) if n - i >= 2])
        bar = tqdm(total=steps * config.epochs, disable=None if config.progress is None else not config.progress,
                   unit="step", leave=False)
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(n)
            batches = [np.sort(order[i:i + bs]) for i in range(0, n, bs) if n - i >= 2]
            seen, loss_sum = 0, torch.zeros((), device=device)
            model.train()
            bar.set_description(f"epoch {epoch}/{config.epochs}")
            for xb, yb in _loader(train_x, train_y, batches, config.num_workers, device):
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if config.augment:
                    xb, yb = _augment(xb, yb, rng)
                with _autocast(device):
                    logits = model.forward_logits(xb)
                loss = bce_dice_loss(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(xb)
                seen += len(xb)
                bar.update(1)
            train_loss = loss_sum.item() / seen  # .item() syncs CUDA before the clock is read
            train_seconds = time.perf_counter() - t0
            val_loss, val_dice = _validate(model, val_x, val_y, config, device)
            record = {
                "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
                "seconds": time.perf_counter() - t0, "slices_per_s": seen / train_seconds,
            }
            history.append(record)
            if val_dice > best_dice:
                best_dice, best_epoch = val_dice, epoch
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
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


def predict_slices(model: UNet, x: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Probabilities for every slice, in eval mode under `torch.inference_mode`.

    Runs on the model's device (bf16 autocast on CUDA); the model's train/eval mode is restored.

    Args:
        model: a `UNet` (any module with `forward_logits` returning (N, 1, H, W) logits).
        x: (N, C, H, W) slices, numpy (memmaps are read batch by batch).
        batch_size: slices per forward pass.

    Returns:
        (N, H, W) float32 probabilities in [0, 1].
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.empty((len(x), *x.shape[-2:]), dtype=np.float32)
    batches = [np.arange(i, min(i + batch_size, len(x))) for i in range(0, len(x), batch_size)]
    try:
        with torch.inference_mode():
            for idx, (xb, _) in zip(batches, _loader(x, None, batches, 0, device)):
                with _autocast(device):
                    logits = model.forward_logits(xb.to(device, non_blocking=True))
                out[idx[0]:idx[-1] + 1] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
    finally:
        model.train(was_training)
    return out
