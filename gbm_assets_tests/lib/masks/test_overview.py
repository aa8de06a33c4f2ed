"""The lesion-mask overview picture: panel choice, 3D Dice, and a small PNG."""

import numpy as np

from gbm_assets.lib.masks.overview import choose, dice_3d, overview_png, thumb


def _case(pid: str, size: int, shift: int = 0, truth: bool = True):
    image = np.random.default_rng(0).normal(size=(24, 24, 6))
    pred = np.zeros((24, 24, 6), bool)
    pred[4:4 + size, 4:4 + size, 2:4] = True
    true = np.roll(pred, shift, axis=0) if truth else None
    return thumb(pid, image, pred, true)


def test_dice_and_slice_choice():
    assert dice_3d(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    t = _case("a", 5)
    assert t.slice_index in (2, 3) and t.voxels == 50 and t.dice == 1.0
    assert _case("b", 5, truth=False).dice is None


def test_choose_largest_then_worst_by_dice_and_a_small_png():
    thumbs = [_case(f"p{i}", 2 + i, shift=i) for i in range(8)]
    panels = choose(thumbs)
    reasons = [r for r, _ in panels]
    assert reasons == ["largest"] * 4 + ["worst Dice"] * 2
    assert [t.patient_id for _, t in panels[:4]] == ["p7", "p6", "p5", "p4"]
    worst = [t.dice for _, t in panels[4:]]
    assert worst == sorted(worst)
    png = overview_png(panels, "demo")
    assert png[:4] == b"\x89PNG" and len(png) < 300_000
    assert overview_png([], "empty")[:4] == b"\x89PNG"
