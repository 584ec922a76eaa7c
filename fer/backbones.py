"""Built-in network families ("backbones") for expression recognition.

`BUILTIN` maps an architecture name to an `fer.models.Architecture`: how to build the network for
any number of classes and input channels, and which layer Grad-CAM hooks. `fer.models` registers
every entry when it is imported. To add a family, write its ``build``/``cam_layer`` functions here
and add one entry to `BUILTIN`.
"""

from __future__ import annotations

from torch import nn

from fer.errors import WeightsError
from fer.mini_xception import MiniXception

# fer.models imports this module at the end of its own import (to register BUILTIN), by which
# point Architecture is defined, so this import sees a usable, if not yet finished, fer.models.
from fer.models import Architecture


def _build_mini_xception(num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    if pretrained:
        # Failing loudly beats silently training from random weights when ImageNet ones were asked for.
        raise WeightsError(
            "mini_xception has no ImageNet weights: build it with pretrained=False, or load the "
            "FER2013 model with fer.models.load_model('mini_xception_fer2013')"
        )
    return MiniXception(num_classes=num_classes, in_channels=in_channels)


def _mini_xception_cam_layer(model: nn.Module) -> nn.Module:
    assert isinstance(model, MiniXception)
    return model.features_out


BUILTIN: dict[str, Architecture] = {
    "mini_xception": Architecture(
        build=_build_mini_xception,
        cam_layer=_mini_xception_cam_layer,
        input_size=64,
        colour="grey",
        # Not ImageNet statistics (there are no ImageNet weights): the [-1, 1] scaling the
        # FER2013 weights were trained with.
        pretrained_mean=(0.5,),
        pretrained_std=(0.5,),
        description="Mini-Xception (Arriaga et al. 2017), 57 k parameters, 64x64 grey, trained from scratch",
    ),
}
