"""U-Net checkpoints: save / load round trip and the finite-weights test."""

import torch

from gbm_assets.lib.segment.checkpoint import (
    architecture,
    load_checkpoint,
    registered_model_name,
    save_checkpoint,
    weights_finite,
)
from gbm_assets.lib.segment.unet import UNet


def test_checkpoint_round_trip_and_finite_weights(tmp_path):
    model = UNet(in_channels=3, base=4).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model.state_dict(), architecture(3, 4, 0.3), "stack")
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]
    loaded = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert weights_finite(path) == (True, [])
    state = model.state_dict()
    state["c1.net.0.weight"][0, 0, 0, 0] = float("nan")
    save_checkpoint(path, state, architecture(3, 4, 0.3), "stack")
    assert weights_finite(path) == (False, ["c1.net.0.weight"])
    assert registered_model_name("t1c") == "gbm-unet-t1c"
