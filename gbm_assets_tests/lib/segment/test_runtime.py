"""The GPU-path switches, exercised on CPU: padded layout = reflect padding, compile, channels_last,
schedules, device-resident batches; and benchmarks/bench_gpu.py runs end to end at a tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from gbm_assets.lib.segment.runtime import DeviceSlices, batch_source, predict_slices, resolve_switch
from gbm_assets.lib.segment.train import TrainConfig, train_unet
from gbm_assets.lib.segment.unet import UNet
from gbm_assets_tests.lib.segment.test_train import bright_discs

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_gpu.py"


@pytest.mark.parametrize("train", [False, True])
def test_padded_layout_gives_the_numbers_of_reflect_padding(train):
    torch.manual_seed(0)
    model = UNet(in_channels=3, base=4).train(train)
    x = torch.randn(3, 3, 64, 48)
    outs, grads = [], []
    for padded in (False, True):
        model.padded_layout = padded
        model.zero_grad()
        torch.manual_seed(1)  # same dropout masks
        y = model.forward_logits(x)
        y.square().sum().backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.equal(outs[0], outs[1])  # forward: bit-identical
    for a, b in zip(*grads):  # backward: the pad's gradient sums in another order (float32 rounding)
        assert (a - b).abs().max() <= 1e-3 * a.abs().max() + 1e-7


def test_switches_resolve_per_device():
    assert resolve_switch(None, torch.device("cuda")) and not resolve_switch(None, torch.device("cpu"))
    assert resolve_switch(True, torch.device("cpu")) and not resolve_switch(False, torch.device("cuda"))


def test_device_slices_match_the_loader():
    x, y = bright_discs(6)
    batches = [np.array([0, 2]), np.array([1, 3, 5])]
    a = list(batch_source(x, y, batches, 0, torch.device("cpu")))
    b = list(batch_source(x, y, batches, 0, torch.device("cpu"), DeviceSlices(x, y, torch.device("cpu"))))
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_schedules_and_cpu_switches_train(schedule):
    data = bright_discs(16, seed=0) + bright_discs(8, seed=1)
    cfg = TrainConfig(base=4, epochs=2, batch_size=8, lr=1e-2, device="cpu", schedule=schedule,
                      channels_last=True, data_on_device=True, threads=1)  # fmt: skip
    result = train_unet(*data, cfg)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["train_loss"])
    assert all(v.is_contiguous() for v in result.best_state.values())  # loadable anywhere


def test_unknown_schedule_is_refused():
    x, y = bright_discs(4)
    with pytest.raises(ValueError, match="schedule"):
        train_unet(x, y, x, y, TrainConfig(base=4, epochs=1, device="cpu", schedule="warp"))


@pytest.mark.slow
def test_compiled_channels_last_inference_matches_eager(tmp_path, monkeypatch):
    # a cache of its own: two test workers compiling into one shared inductor cache can collide
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    model = UNet(in_channels=1, base=4).eval()
    x = np.random.default_rng(0).normal(size=(4, 1, 32, 32)).astype(np.float32)
    eager = predict_slices(model, x, batch_size=4, compile=False, channels_last=False)
    fast = predict_slices(model, x, batch_size=4, compile=True, channels_last=True)
    np.testing.assert_allclose(fast, eager, atol=1e-5)


def test_bench_gpu_runs_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--device", "cpu", "--base", "8", "--size", "64", "--steps", "3", "--batch-size", "2", "--compile", "off"])
    assert out["gflop_per_train_slice"] > 0 and out["matmul_ceiling_tflops"] > 0
    for name in ("train_unet", "bare_loop", "predict_slices"):
        assert out[name]["slices_per_s"] > 0 and out[name]["mfu"] > 0
    assert out["ratio_ours_to_bare"] > 0 and "MFU" in capsys.readouterr().out
