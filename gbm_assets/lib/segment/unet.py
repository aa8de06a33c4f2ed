"""The study's 2D U-Net, layer for layer, in pure torch.

Architecture (the study, "Segmentation (U-Net family)"):
    encoder  ConvBlock widths base x (1, 2, 4, 8, 16), joined by strided 3x3 convs (DownSample);
    decoder  nearest x2 upsample + 1x1 conv halving the channels, concatenated with the encoder
             skip (UpSample), then a ConvBlock; symmetric to the encoder;
    head     3x3 conv (zero padding, with bias) to one channel, then a sigmoid.

Module attribute names (`c1`..`c9`, `d1`..`d4`, `u1`..`u4`, `head`, `act`, and `net` / `layer`
inside the blocks) follow the study's code, so its checkpoints load with `load_state_dict`.

Shapes: inputs are (N, C, H, W) float tensors with H and W divisible by 16 (four halvings).
Reflect padding also needs every encoder level to be at least 2 pixels wide, so H, W >= 32.

Padded layout (`UNet.padded_layout`, on by default): every block writes its output already
reflect-padded by one pixel, and the next 3x3 conv runs with padding 0 on it. The numbers are
those of `padding_mode="reflect"` (the same pad, then the same conv: forward outputs are
bit-identical on CPU), but each tensor is padded once where it is produced, instead of once per
consuming conv; under `torch.compile` the pad becomes an index remap inside the preceding
BatchNorm / LeakyReLU kernel (and the concat of the decoder), not a separate pass over memory.
With `padded_layout = False` each conv pads its own input, as `nn.Conv2d(padding_mode="reflect")`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvBlock", "DownSample", "UNet", "UpSample", "count_parameters", "reflect_pad"]


def reflect_pad(x: torch.Tensor) -> torch.Tensor:
    """One pixel of reflect padding on H and W: (N, C, H, W) -> (N, C, H + 2, W + 2)."""
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


def _conv_prepadded(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv` on an input that already carries its one-pixel padding (so padding 0 here)."""
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


class ConvBlock(nn.Module):
    """Two (3x3 conv -> BatchNorm -> Dropout2d -> LeakyReLU) stages.

    Convs use reflect padding (size preserved) and no bias (BatchNorm follows).

    Args:
        in_channels: channels of the input, C_in.
        out_channels: channels of the output, C_out.
        p: Dropout2d probability (whole feature maps are dropped in training mode).

    Shapes:
        (N, C_in, H, W) -> (N, C_out, H, W)
    """

    def __init__(self, in_channels: int, out_channels: int, p: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, padding_mode="reflect", bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Dropout2d(p),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, padding_mode="reflect", bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Dropout2d(p),
            nn.LeakyReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """padded=False: (N, C_in, H, W) -> (N, C_out, H, W). padded=True: the input carries a
        one-pixel reflect border and so does the output, (N, C_in, H+2, W+2) -> (N, C_out, H+2, W+2)."""
        if not padded:
            return self.net(x)
        conv1, bn1, drop1, act1, conv2, bn2, drop2, act2 = self.net
        x = reflect_pad(act1(drop1(bn1(_conv_prepadded(conv1, x)))))
        return reflect_pad(act2(drop2(bn2(_conv_prepadded(conv2, x)))))


class DownSample(nn.Module):
    """Strided 3x3 conv (stride 2, reflect padding, no bias) -> BatchNorm -> LeakyReLU.

    Args:
        channels: channels in and out, C.

    Shapes:
        (N, C, H, W) -> (N, C, H/2, W/2)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, padding_mode="reflect", bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """padded=True: input and output carry a one-pixel reflect border (see ConvBlock)."""
        if not padded:
            return self.layer(x)
        conv, bn, act = self.layer
        return reflect_pad(act(bn(_conv_prepadded(conv, x))))


class UpSample(nn.Module):
    """Nearest-neighbour x2 upsample, 1x1 conv (with bias) halving channels, concat with skip.

    Args:
        channels: channels of the coarse input, C; the skip must carry C/2 channels.

    Shapes:
        x (N, C, H, W), skip (N, C/2, 2H, 2W) -> (N, C, 2H, 2W)  (upsampled first, skip second)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.layer = nn.Conv2d(channels, channels // 2, kernel_size=1, stride=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """padded=True: x, skip and the output carry a one-pixel reflect border (see ConvBlock)."""
        if padded:
            x = x[..., 1:-1, 1:-1]
        x = self.layer(F.interpolate(x, scale_factor=2, mode="nearest"))
        return torch.cat((reflect_pad(x) if padded else x, skip), dim=1)


class UNet(nn.Module):
    """The study's U-Net for binary lesion masks.

    Args:
        in_channels: input channels C (1 for one sequence, 3 for the study's T1/T2/FLAIR "Stack").
        base: width of the first level; levels are base x (1, 2, 4, 8, 16). The study uses 64.
        p: Dropout2d probability in every ConvBlock (the study: 0.3).
        out_channels: sigmoid outputs K of the head: 1 (the study's binary whole tumour, default) or
            3 for the nested regions of `regions.REGION_CHANNELS` (whole tumour, core, enhancing).
            Only the head's width changes, so out_channels=1 builds the same weights as before.

    Shapes:
        forward:        (N, C, H, W) -> (N, K, H, W) probabilities in [0, 1]
        forward_logits: (N, C, H, W) -> (N, K, H, W) logits (use these for the loss)
        H and W must be divisible by 16 and at least 32.
    """

    def __init__(self, in_channels: int = 1, base: int = 64, p: float = 0.3, out_channels: int = 1):
        super().__init__()
        self.in_channels, self.base, self.p, self.out_channels = in_channels, base, p, out_channels
        self.padded_layout = True
        """Blocks hand each other reflect-padded outputs (same numbers, fewer passes; module docstring)."""
        # Encoder
        self.c1 = ConvBlock(in_channels, base, p)
        self.d1 = DownSample(base)
        self.c2 = ConvBlock(base, base * 2, p)
        self.d2 = DownSample(base * 2)
        self.c3 = ConvBlock(base * 2, base * 4, p)
        self.d3 = DownSample(base * 4)
        self.c4 = ConvBlock(base * 4, base * 8, p)
        self.d4 = DownSample(base * 8)
        self.c5 = ConvBlock(base * 8, base * 16, p)
        # Decoder
        self.u1 = UpSample(base * 16)
        self.c6 = ConvBlock(base * 16, base * 8, p)
        self.u2 = UpSample(base * 8)
        self.c7 = ConvBlock(base * 8, base * 4, p)
        self.u3 = UpSample(base * 4)
        self.c8 = ConvBlock(base * 4, base * 2, p)
        self.u4 = UpSample(base * 2)
        self.c9 = ConvBlock(base * 2, base, p)
        # Head: the study's 3x3 conv keeps PyTorch's defaults (zero padding, bias).
        self.head = nn.Conv2d(base, out_channels, kernel_size=3, stride=1, padding=1)
        self.act = nn.Sigmoid()

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits before the sigmoid, (N, C, H, W) -> (N, out_channels, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 16 or w % 16 or h < 32 or w < 32:
            raise ValueError(f"H and W must be multiples of 16 and >= 32, got {h}x{w}")
        pad = self.padded_layout
        l1 = self.c1(reflect_pad(x) if pad else x, pad)
        l2 = self.c2(self.d1(l1, pad), pad)
        l3 = self.c3(self.d2(l2, pad), pad)
        l4 = self.c4(self.d3(l3, pad), pad)
        l5 = self.c5(self.d4(l4, pad), pad)
        r4 = self.c6(self.u1(l5, l4, pad), pad)
        r3 = self.c7(self.u2(r4, l3, pad), pad)
        r2 = self.c8(self.u3(r3, l2, pad), pad)
        r1 = self.c9(self.u4(r2, l1, pad), pad)
        return self.head(r1[..., 1:-1, 1:-1] if pad else r1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities, as in the study: sigmoid(forward_logits(x)), shape (N, out_channels, H, W)."""
        return self.act(self.forward_logits(x))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters; BatchNorm running stats are buffers, not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
