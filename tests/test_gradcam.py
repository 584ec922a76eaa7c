"""Grad-CAM: the backward-free form for affine heads equals the autograd one, for every family that has it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer.gradcam import FeatureTap, LinearHeadCam, grad_cam
from fer.models import ARCHITECTURES
from fer.zoo import load_model

from .conftest import threads_disagreeing

LINEAR_HEADS = sorted(name for name, arch in ARCHITECTURES.items() if arch.linear_head is not None)


def test_the_shipped_family_and_resnet_have_a_linear_head() -> None:
    assert {"mini_xception", "resnet18", "efficientnet_lite0"} <= set(LINEAR_HEADS)


def _features(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return FeatureTap(layer)(model, x)[1]


@pytest.mark.parametrize("name", LINEAR_HEADS)
def test_linear_head_cam_equals_autograd_grad_cam(name: str) -> None:
    arch = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = arch.build(6, 3, False).eval()
    with torch.no_grad():  # random init leaves BatchNorm at identity; give it statistics to matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    size = 64 if name == "mini_xception" else 96
    x = torch.randn(3, 3, size, size)
    layer = arch.cam_layer(model)
    features = _features(model, layer, x)
    cam = LinearHeadCam(arch.linear_head(model), tuple(features.shape[1:]))
    assert cam.weights.shape == (6, features.shape[1])
    peaks = []
    for targets in ([0, 3, 5], [2, 2, 2], [4, 1, 0]):
        want = grad_cam(model, layer, x, targets, size=40)
        got = cam(features, targets, size=40)
        assert got.shape == want.shape == (3, 40, 40) and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-4
        peaks += list(want.max(axis=(1, 2)))
    # Some maps are blank (a class with no positive evidence anywhere), not all: not only blanks compared.
    assert sum(p > 0.99 for p in peaks) >= 3


def test_head_weights_do_not_depend_on_the_features() -> None:
    """The premise of the backward-free form: an affine head's gradient is the same for any input."""
    loaded = load_model("default", engine="torch")
    head = ARCHITECTURES["mini_xception"].linear_head(loaded.module)
    a = torch.randn(2, 128, 4, 4, requires_grad=True)
    (g1,) = torch.autograd.grad(head(a)[:, 3].sum(), a)
    (g2,) = torch.autograd.grad(head(5 * a + 1)[:, 3].sum(), a)
    assert torch.allclose(g1, g2 / 5, atol=1e-6)


def test_linear_head_cam_refuses_features_of_another_shape() -> None:
    loaded = load_model("default", engine="torch")
    assert loaded.cam is not None
    with pytest.raises(ValueError, match="do not fit"):
        loaded.cam(np.zeros((1, 128, 5, 5), np.float32), [0])


def test_feature_tap_keeps_each_threads_own_output() -> None:
    """Threads sharing the module each get the features of their own input, never another's."""
    loaded = load_model("default", engine="torch")
    assert loaded.tap is not None
    inputs = [np.full((1, 1, 64, 64), v, np.float32) for v in np.linspace(-1, 1, 6)]
    assert threads_disagreeing(lambda x: loaded.run(x, features=True)[1], inputs, rounds=30) == []


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_classify_gives_probabilities_and_the_same_maps_by_every_path(engine: str) -> None:
    """LoadedModel.classify, the one classifier call: the probabilities of predict_probabilities, and
    maps equal whether the targets are given, chosen by a function of the probabilities, or left to the
    top-1; the backward-free path (affine head) equals the autograd path of a model without one."""
    from fer.models import LoadedModel, predict_probabilities, preprocess_array

    loaded = load_model("default", engine=engine)
    crops = np.random.default_rng(3).integers(0, 256, (4, 80, 80, 3), dtype=np.uint8)
    x = preprocess_array(crops, loaded.spec)
    plain, none = loaded.classify(x)
    assert none is None and plain.shape == (4, len(loaded.spec.labels))
    assert np.allclose(plain.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(plain, predict_probabilities(loaded, crops, batch_size=3), atol=1e-5)
    top = [int(i) for i in plain.argmax(axis=1)]
    second = [int(i) for i in np.argsort(-plain, axis=1)[:, 1]]
    probs, default_maps = loaded.classify(x, attention=True, size=32)
    _, by_index = loaded.classify(x, attention=True, targets=second, size=32)
    _, by_function = loaded.classify(x, attention=True, targets=lambda p: np.argsort(-p, axis=1)[:, 1], size=32)
    autograd = LoadedModel(loaded.module, loaded.spec)  # no features kept: Grad-CAM by a backward pass
    _, by_autograd = autograd.classify(x, attention=True, targets=top, size=32)
    assert np.allclose(probs, plain, atol=1e-5)
    assert default_maps.shape == (4, 32, 32) and np.abs(by_autograd - default_maps).max() < 1e-4
    assert np.array_equal(by_index, by_function) and not np.allclose(by_index, default_maps)
