"""GPU efficiency of the study's U-Net training and inference, in one run (not a test).

Reports, for `train_unet` (the platform's trainer, with its CUDA defaults: torch.compile,
channels_last, fused Adam, data on the device, bf16 autocast) and for a bare PyTorch loop on the
same model (same compile / memory-format switches, preloaded tensors, no augmentation):
slices/s, TFLOP/s, MFU and the ratio ours / bare; plus `predict_slices` slices/s.

- FLOPs per training slice are COUNTED with `torch.utils.flop_counter.FlopCounterMode` on one
  eager forward + backward of the model (not estimated); inference counts the forward only.
- MFU = achieved FLOP/s / the bf16 dense matmul ceiling MEASURED here (a large square bf16
  matmul, best of a few). On CPU the "ceiling" is the float32 matmul rate (CPU runs float32).
- Timings exclude warm-up (compilation): every timed loop runs after an untimed one.

On a GPU (the study's size):
    python benchmarks/bench_gpu.py --base 64 --size 256 --batch-size 64 --steps 50
On CPU (tiny, what the test runs):
    python benchmarks/bench_gpu.py --device cpu --base 8 --size 64 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from gbm_assets.lib.segment.losses import bce_dice_loss
from gbm_assets.lib.segment.runtime import autocast, compiled_logits, memory_format, predict_slices, resolve_device, resolve_switch
from gbm_assets.lib.segment.train import TrainConfig, train_unet
from gbm_assets.lib.segment.unet import UNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(device: torch.device, n: int, repeats: int = 5) -> float:
    """Measured dense matmul FLOP/s: bf16 on CUDA, float32 on CPU; best of `repeats`."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2 * n**3 / best


def counted_flops(model: UNet, x: torch.Tensor, y: torch.Tensor, backward: bool) -> int:
    """FLOPs of one eager forward (+ backward) on batch x, counted by FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    model.zero_grad(set_to_none=True)
    with counter:
        if backward:
            bce_dice_loss(model.forward_logits(x), y).backward()
        else:
            with torch.no_grad():
                model.forward_logits(x)
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bare_loop(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, steps: int) -> float:
    """The minimal loop, same switches as ours; returns slices/s after an untimed warm-up."""
    device = x.device
    fmt = memory_format(resolve_switch(cfg.channels_last, device))
    torch.manual_seed(0)
    model = UNet(x.shape[1], cfg.base, cfg.dropout).to(device, memory_format=fmt).train()
    forward = compiled_logits(model, resolve_switch(cfg.compile, device), cfg.compile_mode)
    fused = resolve_switch(cfg.fused_adam, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True if fused else None)
    bs, n = cfg.batch_size, len(x)

    def run(k: int) -> None:
        for step in range(k):
            i = (step * bs) % max(n - bs + 1, 1)
            with autocast(device):
                logits = forward(x[i:i + bs].contiguous(memory_format=fmt))
            loss = bce_dice_loss(logits, y[i:i + bs])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    run(3)  # warm-up: compilation, allocator, autotuning
    _sync(device)
    t0 = time.perf_counter()
    run(steps)
    _sync(device)
    return steps * bs / (time.perf_counter() - t0)


def ours(x: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> float:
    """Training-phase slices/s of `train_unet`: the second of two epochs (the first compiles)."""
    result = train_unet(x, y, x[: cfg.batch_size], y[: cfg.batch_size], replace(cfg, epochs=2))
    return result.history[-1]["slices_per_s"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--base", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps per loop")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--compile-mode", default="default")
    ap.add_argument("--matmul-n", type=int, default=0, help="matmul ceiling size (0: 8192 on CUDA, 512 on CPU)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object too")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    compile_ = {"auto": None, "on": True, "off": False}[args.compile]
    cfg = TrainConfig(base=args.base, epochs=2, batch_size=args.batch_size, augment=False, device=str(device),
                      progress=False, compile=compile_, compile_mode=args.compile_mode)  # fmt: skip
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    x = rng.normal(size=(n, args.channels, args.size, args.size)).astype(np.float32)
    y = (rng.random((n, args.size, args.size)) < 0.1).astype(np.uint8)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y[:, None].astype(np.float32)).to(device)

    probe = UNet(args.channels, args.base).to(device).train()
    k = min(2, n)
    train_flops = counted_flops(probe, xt[:k], yt[:k], backward=True) / k
    infer_flops = counted_flops(probe.eval(), xt[:k], yt[:k], backward=False) / k
    ceiling = matmul_ceiling(device, args.matmul_n or (8192 if device.type == "cuda" else 512))

    bare = bare_loop(xt, yt, cfg, args.steps)
    mine = ours(x, y, cfg)
    model = UNet(args.channels, args.base).to(device).eval()
    predict_slices(model, x[: args.batch_size * 2], batch_size=args.batch_size, compile=compile_)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    predict_slices(model, x, batch_size=args.batch_size, compile=compile_)
    infer = n / (time.perf_counter() - t0)

    def row(sps: float, flops: float) -> dict:
        return {"slices_per_s": sps, "tflops": sps * flops / 1e12, "mfu": sps * flops / ceiling}

    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "base": args.base, "size": args.size, "batch_size": args.batch_size, "compile": resolve_switch(compile_, device),
        "gflop_per_train_slice": train_flops / 1e9, "gflop_per_inference_slice": infer_flops / 1e9,
        "matmul_ceiling_tflops": ceiling / 1e12,
        "train_unet": row(mine, train_flops), "bare_loop": row(bare, train_flops),
        "ratio_ours_to_bare": mine / bare, "predict_slices": row(infer, infer_flops),
    }  # fmt: skip
    print(f"device {out['device']}, base {args.base}, {args.size}x{args.size}, batch {args.batch_size}, "
          f"compile {out['compile']}; {out['gflop_per_train_slice']:.2f} GFLOP per training slice (counted), "
          f"matmul ceiling {out['matmul_ceiling_tflops']:.2f} TFLOP/s (measured)")  # fmt: skip
    for name in ("train_unet", "bare_loop", "predict_slices"):
        r = out[name]
        print(f"{name:15s} {r['slices_per_s']:10.1f} slices/s {r['tflops']:8.3f} TFLOP/s  MFU {100 * r['mfu']:5.1f}%")
    print(f"ratio train_unet / bare loop: {out['ratio_ours_to_bare']:.3f}")
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
