"""Throughput of `train_unet` against a bare PyTorch loop doing the same work (not a test).

Both train the same U-Net (same width, input size, batch size, number of steps, Adam,
`bce_dice_loss`, no augmentation, bf16 autocast on CUDA) on the same random data, in one
process, alternating ours / bare for a few repeats after one untimed warm-up of each.
Ours is timed by its own `slices_per_s` (training phase only; its per-epoch validation is not
counted); the bare loop is timed around its steps. Prints slices/s and the ratio ours / bare
(target >= 0.95), as the median of the per-repeat ratios (robust to a machine whose load
changes between repeats; on a shared CPU, `--threads 1` avoids OpenMP oversubscription).

    python benchmarks/bench_trainer.py --base 8 --size 64 --steps 30 --repeats 7 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.train import TrainConfig, resolve_device, train_unet
from gbm_assets.lib.segment.unet import UNet


def bare_loop(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, steps: int) -> float:
    """The minimal loop: preloaded tensors, random batches, forward/loss/backward/step. Returns slices/s."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = UNet(x.shape[1], cfg.base, cfg.dropout).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y[:, None].astype(np.float32))
    order = torch.randperm(len(x))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        xb, yb = xt[idx].to(device), yt[idx].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model.forward_logits(xb)
        loss = bce_dice_loss(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()  # wait for the device
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def ours(x, y, vx, vy, cfg: TrainConfig) -> float:
    """Training-phase slices/s of `train_unet` over one epoch of len(x) / batch_size steps."""
    return train_unet(x, y, vx, vy, cfg).history[0]["slices_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=8, help="U-Net base width (the study: 64)")
    ap.add_argument("--size", type=int, default=64, help="slice height = width, a multiple of 16")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per timed run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    x = rng.normal(size=(n, args.channels, args.size, args.size)).astype(np.float32)
    y = (rng.random((n, args.size, args.size)) < 0.1).astype(np.uint8)
    vx, vy = x[: args.batch_size], y[: args.batch_size]
    cfg = TrainConfig(base=args.base, epochs=1, batch_size=args.batch_size, seed=0, augment=False,
                      device=args.device, progress=False)
    print(f"device={resolve_device(args.device)} threads={torch.get_num_threads()} base={args.base} "
          f"size={args.size} batch={args.batch_size} steps={args.steps} repeats={args.repeats}")
    ours(x, y, vx, vy, cfg), bare_loop(x, y, cfg, args.steps)  # warm-up, untimed
    results: dict[str, list[float]] = {"ours": [], "bare": []}
    runs = {"ours": lambda: ours(x, y, vx, vy, cfg), "bare": lambda: bare_loop(x, y, cfg, args.steps)}
    for r in range(args.repeats):
        for name in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):  # alternate who goes first
            results[name].append(runs[name]())
        print(f"repeat {r + 1}: ours {results['ours'][-1]:8.1f} slices/s   bare {results['bare'][-1]:8.1f} slices/s"
              f"   ratio {results['ours'][-1] / results['bare'][-1]:.3f}")
    o, b = statistics.median(results["ours"]), statistics.median(results["bare"])
    paired = statistics.median(a / c for a, c in zip(results["ours"], results["bare"]))
    print(f"median: ours {o:.1f} slices/s, bare {b:.1f} slices/s; "
          f"median paired ratio ours/bare = {paired:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
