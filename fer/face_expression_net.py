"""face-api's expression CNN (``FaceExpressionNet`` of vladmandic/face-api, the maintained fork of
justadudewhohacks/face-api.js) in PyTorch.

The layout follows the package's own TypeScript (``src/faceFeatureExtractor/denseBlock.ts``,
``FaceFeatureExtractor.ts``, ``faceProcessor/FaceProcessor.ts``) so `scripts/convert_face_api.py`
copies the TF.js weights one to one: four dense blocks of 32/64/128/256 channels, each halving the
resolution (112 → 56 → 28 → 14 → 7), a 7x7 average pool and a 256 → 7 linear layer. Block 0 starts
with a plain 3x3 stride-2 convolution, every other convolution is depthwise-separable (3x3 depthwise,
1x1 pointwise, one bias after the pointwise). Inside a block the first output goes through a ReLU and
each later convolution reads the ReLU of the running sum of the outputs before it; the block returns
the ReLU of the sum of all four. There is no batch norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` with zeros as TensorFlow's "same" padding does for a strided window.

    TF pads ``max((ceil(n / stride) - 1) * stride + kernel - n, 0)`` pixels per axis with the odd
    one at the bottom/right: for a 3x3 stride-2 window on an even side that is (0, 1), which torch's
    symmetric ``padding`` cannot express.
    """
    pads: list[int] = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad wants the last axis first
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SeparableConv(nn.Module):
    """TF.js ``separableConv2d`` + bias: 3x3 depthwise (no bias), 1x1 pointwise with a bias, "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        # Stride 1 "same" is symmetric (1 px each side) for a 3x3 window: plain conv padding, no copy.
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1 if stride == 1 else 0,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` → ``(N, out, ceil(H / stride), ceil(W / stride))``."""
        if self.stride != 1:
            x = _tf_same_pad(x, 3, self.stride)
        return self.pointwise(self.depthwise(x))


class StridedConv(nn.Module):
    """The first block's plain 3x3 convolution with bias, stride 2, TF "same" padding."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` → ``(N, out, ceil(H / 2), ceil(W / 2))``."""
        return self.conv(_tf_same_pad(x, 3, 2))


class DenseBlock(nn.Module):
    """face-api's ``denseBlock4``: four convolutions, each fed the ReLU of the sum of the outputs before it.

    ``out1 = relu(conv0(x))``, ``out_k = conv_k(relu(out1 + ... + out_{k-1}))`` for k = 2..4, and the
    block's output is ``relu(out1 + out2 + out3 + out4)``; conv0 halves the resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False) -> None:
        super().__init__()
        self.conv0: nn.Module = StridedConv(in_channels, out_channels) if first else SeparableConv(
            in_channels, out_channels, stride=2)
        self.conv1 = SeparableConv(out_channels, out_channels)
        self.conv2 = SeparableConv(out_channels, out_channels)
        self.conv3 = SeparableConv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` → ``(N, out, ceil(H / 2), ceil(W / 2))``, non-negative."""
        total = F.relu(self.conv0(x))
        for conv in (self.conv1, self.conv2, self.conv3):
            total = total + conv(F.relu(total))
        return F.relu(total)


class FaceExpressionNet(nn.Module):
    """face-api's expression classifier (for 7 classes and RGB input: 323,687 parameters).

    Input ``(N, in_channels, 112, 112)`` float32 (other sizes work too), normalised as the
    checkpoint's spec says (for the face-api weights: RGB, ``(pixel - (122.782, 117.001, 104.298)) / 255``).
    Output ``(N, num_classes)`` float32 logits (face-api applies a softmax).

    Grad-CAM: `features_out` (the last dense block) outputs ``(N, 256, 7, 7)`` for a 112x112 input;
    after it come only the average pool and the linear layer, an affine head.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)

    def __init__(self, num_classes: int = 7, in_channels: int = 3) -> None:
        super().__init__()
        # Named as face-api's tensors (dense0/conv0/filters, ...), so the conversion is a renaming.
        self.dense0 = DenseBlock(in_channels, self.widths[0], first=True)
        self.dense1 = DenseBlock(self.widths[0], self.widths[1])
        self.dense2 = DenseBlock(self.widths[1], self.widths[2])
        self.dense3 = DenseBlock(self.widths[2], self.widths[3])
        self.fc = nn.Linear(self.widths[3], num_classes)

    @property
    def features_out(self) -> nn.Module:
        """The module whose output is the last spatial feature map (hook it for Grad-CAM)."""
        return self.dense3

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, 256, h, w)`` features → ``(N, num_classes)`` logits: average over space, then the linear layer.

        face-api pools with a 7x7 stride-2 "valid" window, which on the 7x7 map of a 112x112 input
        is one window, the mean; the mean also serves other input sizes (fine-tuning).
        """
        return self.fc(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` float32 (112x112 for the face-api weights) → ``(N, num_classes)`` logits."""
        for block in (self.dense0, self.dense1, self.dense2, self.dense3):
            x = block(x)
        return self.head(x)
