"""ML-Net (Cornia, Baraldi, Serra & Cucchiara, "A Deep Multi-Level Network for Saliency Prediction",
ICPR 2016) in PyTorch: the network, its loss, the `SaliencySpec` saved beside every checkpoint, and
saving/loading checkpoints.

Architecture (as in the paper and the authors' Keras release, github.com/marcellacornia/mlnet):
VGG-16 convolutional layers with the fourth max-pool's stride set to 1 and the fifth max-pool
removed, so three feature maps share 1/8 of the input resolution: after pool3 (256 channels),
after pool4 (512) and conv5_3 (512). They are concatenated (1280 channels) → dropout 0.5 → 3×3
conv, 64 channels, ReLU → 1×1 conv, 1 channel, ReLU → multiplied by a learned low-resolution prior
(1/10 of the output size per side, 6×8 for a 480×640 input, bilinearly upsampled) → ReLU.
Input 480×640 RGB → output 60×80.

The authors' release keeps conv5 as plain 3×3 convolutions (conv5_3 is already at stride 8 because
pool4 no longer subsamples). ``conv5_dilation=2`` gives the DeepLab-style alternative, which keeps
the receptive field that ImageNet-trained conv5 filters expect; the default follows the release.

The feature layers use torchvision's ``vgg16().features`` layout and indices, so a user who has
ImageNet VGG-16 weights can load them with ``MLNet(backbone_weights=PATH)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer.errors import InputError, WeightsError
from fer.weights import JsonSpec

#: ImageNet RGB mean and std for pixels in [0, 1] (what torchvision's VGG-16 weights expect).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: The paper's input size (rows, cols); the output is 1/8 of it.
DEFAULT_INPUT_SIZE: tuple[int, int] = (480, 640)

#: Total stride of the network.
STRIDE = 8

#: The prior is this many times smaller than the output on each side (the release's
#: ``downsampling_factor_product``).
PRIOR_FACTOR = 10

# VGG-16 configuration "D" without pool5; "M" is a 2×2 max-pool. Indices of the resulting
# Sequential match torchvision's vgg16().features[:30].
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)
_POOL3, _POOL4, _CONV5_FIRST = 16, 23, 24


class _SamePool(nn.Module):
    """2×2 max-pool with stride 1 that keeps the spatial size (Keras ``border_mode='same'``, which
    pads only bottom/right). Zero padding equals Keras' ignore-the-pad because inputs are post-ReLU
    (non-negative). No parameters, so torchvision's state-dict keys are unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1)), kernel_size=2, stride=1)


def _vgg16_features(width: float, conv5_dilation: int) -> tuple[nn.Sequential, list[int]]:
    """torchvision-layout VGG-16 convolutions without pool5, and the conv layers' channel counts."""
    from torchvision.models.vgg import make_layers

    cfg = [v if v == "M" else max(1, round(int(v) * width)) for v in _VGG16_CFG]
    features = make_layers(cfg, batch_norm=False)
    features[_POOL4] = _SamePool()
    if conv5_dilation != 1:
        for layer in features[_CONV5_FIRST:]:
            if isinstance(layer, nn.Conv2d):
                layer.dilation = (conv5_dilation, conv5_dilation)
                layer.padding = (conv5_dilation, conv5_dilation)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            # torchvision's VGG initialisation, which trains a plain (no batch-norm) VGG from scratch.
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)  # type: ignore[arg-type]
    return features, [int(v) for v in cfg if v != "M"]


def prior_size(input_size: Sequence[int]) -> tuple[int, int]:
    """Side lengths ``(rows, cols)`` of the learned prior for an input of ``input_size``."""
    return tuple(max(1, (s // STRIDE) // PRIOR_FACTOR) for s in input_size)  # type: ignore[return-value]


class MLNet(nn.Module):
    """ML-Net saliency network.

    Args:
        input_size: ``(rows, cols)`` the network is trained for, each divisible by 8; sets the size
            of the learned prior. Other sizes run too (the prior is resized to the output).
        width: multiplier on every VGG channel count. 1.0 is the paper's network; smaller values
            are only for fast experiments and tests (such weights cannot come from ImageNet).
        conv5_dilation: 1 (authors' release) or 2 (atrous conv5).
        dropout: dropout on the 1280-channel concatenation (0.5 in the paper).
        backbone_weights: optional ``.safetensors`` file with torchvision VGG-16 weights
            (keys ``features.N.weight``/``features.N.bias``, or without the ``features.`` prefix).

    Forward: ``(N, 3, H, W)`` float32 normalised with ImageNet mean/std → ``(N, 1, H/8, W/8)``
    float32, non-negative (not normalised; see `normalise_maps`).
    """

    def __init__(
        self,
        input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
        *,
        width: float = 1.0,
        conv5_dilation: int = 1,
        dropout: float = 0.5,
        backbone_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        rows, cols = (int(s) for s in input_size)
        if rows % STRIDE or cols % STRIDE or rows <= 0 or cols <= 0:
            raise InputError(f"ML-Net input size must be positive multiples of {STRIDE}, got {rows}×{cols}")
        if not 0 < width <= 1:
            raise InputError(f"ML-Net width must be in (0, 1], got {width}")
        if conv5_dilation not in (1, 2):
            raise InputError(f"conv5_dilation must be 1 or 2, got {conv5_dilation}")
        self.input_size = (rows, cols)
        self.features, channels = _vgg16_features(width, conv5_dilation)
        c3, c4, c5 = channels[6], channels[9], channels[12]  # conv3_3, conv4_3, conv5_3
        self.dropout = nn.Dropout(dropout)
        self.encode = nn.Conv2d(c3 + c4 + c5, 64, kernel_size=3, padding=1)
        self.readout = nn.Conv2d(64, 1, kernel_size=1)
        # The release initialises these with Glorot-normal weights and zero biases.
        for conv in (self.encode, self.readout):
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        # The release learns W (init 0) and multiplies by 1 + W; storing 1 + W directly is the same
        # parameterisation, and the loss pulls it towards 1.
        self.prior = nn.Parameter(torch.ones(prior_size(self.input_size)))
        if backbone_weights is not None:
            self.load_backbone(backbone_weights)

    def load_backbone(self, path: str | Path) -> None:
        """Load torchvision-layout VGG-16 conv weights from a ``.safetensors`` file (pool5 and the
        classifier are ignored). Pickle files are refused: convert once with
        ``safetensors.torch.save_file(torch.load(p, weights_only=True), 'vgg16.safetensors')``."""
        path = Path(path)
        if path.suffix != ".safetensors" or not path.is_file():
            raise WeightsError(
                f"{path}: backbone weights must be an existing .safetensors file (convert a .pth with "
                "safetensors.torch.save_file(torch.load(p, weights_only=True), 'vgg16.safetensors'))"
            )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        own = self.features.state_dict()
        missing = sorted(set(own) - set(state))
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise WeightsError(
                f"{path}: not VGG-16 features for this network (missing {missing[:3]}, wrong shape {wrong[:3]})"
            )
        self.features.load_state_dict({k: state[k] for k in own})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.features[: _POOL3 + 1](x)
        pool4 = self.features[_POOL3 + 1 : _POOL4 + 1](pool3)
        conv5 = self.features[_POOL4 + 1 :](pool4)
        h = torch.cat([pool3, pool4, conv5], dim=1)
        h = F.relu(self.encode(self.dropout(h)))
        h = F.relu(self.readout(h))
        prior = F.interpolate(self.prior[None, None], size=h.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(h * prior)


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Divide each map by its maximum; ``(N, 1, h, w)`` or ``(N, h, w)`` → same shape in [0, 1].
    An all-zero map stays zero."""
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    return maps / peak.clamp_min(1e-8)


def mlnet_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    prior: torch.Tensor,
    alpha: float = 1.1,
    lam: float | None = None,
) -> torch.Tensor:
    """ML-Net training loss (paper eq. 3, and the release's ``loss`` plus its prior regulariser).

    ``mean(((pred / max(pred)) - target)² / (alpha - target)) + lam * sum((1 - prior)²)``.
    The weight ``1 / (alpha - target)`` makes errors on salient pixels (target near 1) cost up to
    ``1 / (alpha - 1) = 10`` times more than on background pixels.

    Args:
        pred: ``(N, 1, h, w)`` or ``(N, h, w)`` non-negative network output.
        target: ground-truth density of the same shape, max-normalised to [0, 1].
        prior: the learned prior (any shape).
        alpha: must exceed 1 (the largest target value).
        lam: prior weight; None uses the release's ``1 / prior.numel()``.
    Returns:
        Scalar tensor.
    """
    if pred.shape != target.shape:
        raise InputError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if alpha <= 1.0:
        raise InputError(f"alpha must be > 1 (targets reach 1), got {alpha}")
    lam = 1.0 / prior.numel() if lam is None else lam
    error = ((normalise_maps(pred) - target) ** 2 / (alpha - target)).mean()
    return error + lam * ((1.0 - prior) ** 2).sum()


# --------------------------------------------------------------------------- input preparation


def letterbox(image: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize ``image`` to fit ``size`` keeping its aspect ratio, centred and padded with zeros
    (the authors' ``padding``), so saliency is never predicted on a stretched image.

    Args:
        image: ``(h, w)`` or ``(h, w, C)`` array (uint8 image or float map).
        size: ``(rows, cols)`` of the output.
    Returns:
        ``(padded (rows, cols[, C]) same dtype, (y0, y1, x0, x1) region holding the image)``.
    """
    rows, cols = (int(s) for s in size)
    h, w = image.shape[:2]
    scale = min(rows / h, cols / w)
    new_h, new_w = max(1, min(rows, round(h * scale))), max(1, min(cols, round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    if resized.ndim < image.ndim:  # cv2 drops a trailing channel axis of length 1
        resized = resized[..., None]
    out = np.zeros((rows, cols) + image.shape[2:], image.dtype)
    y0, x0 = (rows - new_h) // 2, (cols - new_w) // 2
    out[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return out, (y0, y0 + new_h, x0, x0 + new_w)


def output_region(region: Sequence[int], stride: int = STRIDE) -> tuple[int, int, int, int]:
    """Map an input-pixel region ``(y0, y1, x0, x1)`` to the network's output grid (floor/ceil)."""
    y0, y1, x0, x1 = (int(v) for v in region)
    return y0 // stride, -(-y1 // stride), x0 // stride, -(-x1 // stride)


def to_tensor(images: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 RGB → ``(N, 3, H, W)`` float32 normalised as ``(x / 255 - mean) / std``."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    x = (x - np.asarray(mean, np.float32).reshape(1, 3, 1, 1)) / np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy(np.ascontiguousarray(x))


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class SaliencySpec(JsonSpec):
    """Everything needed to rebuild and feed a trained ML-Net; saved as JSON beside its weights.

    ``input_size`` is ``(rows, cols)``; ``mean``/``std`` apply to RGB pixels in [0, 1].
    ``evaluation`` holds validation metrics (``cc``, ``kld``, ``nss``, ``sim``, ``auc_judd``, ``n``,
    ``epoch``); ``training`` the run's settings and history.
    """

    KIND: ClassVar[str] = "saliency spec"
    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("input_size", "mean", "std")

    weights: str
    sha256: str
    name: str = "mlnet"
    architecture: str = "mlnet"
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    width: float = 1.0
    conv5_dilation: int = 1
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    licence: str = "unknown"
    source: str = ""
    training_data: str = ""
    hf_repo: str | None = None
    evaluation: Mapping[str, Any] | None = None
    training: Mapping[str, Any] | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.architecture != "mlnet":
            raise WeightsError(f"saliency spec {self.name!r}: architecture must be 'mlnet', not {self.architecture!r}")
        if len(self.input_size) != 2 or len(self.mean) != 3 or len(self.std) != 3:
            raise WeightsError(f"saliency spec {self.name!r}: input_size needs 2 values, mean/std 3")


def build_mlnet(spec: SaliencySpec) -> MLNet:
    """An untrained `MLNet` shaped as ``spec`` says."""
    return MLNet(spec.input_size, width=spec.width, conv5_dilation=spec.conv5_dilation)


def save_mlnet(model: MLNet, spec: SaliencySpec, out_dir: str | Path, stem: str = "mlnet") -> SaliencySpec:
    """Write ``OUT/STEM.safetensors`` and ``OUT/STEM.json`` (the spec with the file's SHA-256).
    Returns the spec as written."""
    from safetensors.torch import save_file

    from fer.weights import sha256_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_file = out / f"{stem}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(weights_file))
    spec = dataclasses.replace(spec, weights=weights_file.name, sha256=sha256_file(weights_file))
    spec.save(out / f"{stem}.json")
    return spec


def spec_path_for(path: str | Path) -> Path:
    """The spec JSON for a ``.json`` path, a ``.safetensors`` path (JSON beside it) or a folder
    holding ``mlnet.json``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "mlnet.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if path.suffix != ".json" or not path.is_file():
        raise WeightsError(f"no ML-Net checkpoint at {path}: expected a .json spec beside its .safetensors")
    return path


def load_mlnet(path: str | Path, device: str | torch.device = "cpu") -> tuple[MLNet, SaliencySpec]:
    """Load a checkpoint (spec JSON, its ``.safetensors`` or their folder), SHA-256 verified, in eval
    mode on ``device``. The weights file is found by `fer.weights.resolve` (beside the spec, then
    ``weights/``, then the spec's Hugging Face Hub repo)."""
    from fer.weights import load_state_dict, resolve

    spec_path = spec_path_for(path)
    spec = SaliencySpec.load(spec_path)
    weights_path = resolve(spec.weights, spec.sha256, hf_repo=spec.hf_repo, search_dirs=[spec_path.parent])
    model = build_mlnet(spec)
    state = load_state_dict(weights_path, spec.sha256)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{weights_path} does not fit the ML-Net in {spec_path}: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    return model, spec


def output_size(input_size: Sequence[int]) -> tuple[int, int]:
    """Output ``(rows, cols)`` for an input of ``input_size`` (each side divided by 8, floored)."""
    return tuple(int(math.floor(s / STRIDE)) for s in input_size)  # type: ignore[return-value]
