"""The PyTorch mini-Xception port: parity with the Keras original, a real face, use as a backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fer.errors import WeightsError
from fer.io import read_image
from fer.mini_xception import MiniXception
from fer.models import ARCHITECTURES, cam_layer, preprocess
from fer.zoo import load_model

ROOT = Path(__file__).resolve().parent.parent
# Written by scripts/keras_reference.py: an h5py + numpy forward pass of the original Keras file.
FIXTURE = ROOT / "tests" / "fixtures" / "mini_xception_parity.npz"
#: Largest |difference| from the Keras reference, as the model card (weights/mini_xception_fer2013.json)
#: quotes it; measured 4.4e-6 on logits, 4.8e-7 on probabilities.
PARITY = "1e-4"


@pytest.fixture(scope="module")
def loaded():
    return load_model("mini_xception_fer2013")


def test_matches_keras_reference(loaded) -> None:
    ref = np.load(FIXTURE)
    assert tuple(ref["labels"]) == loaded.spec.labels
    assert len(ref["images"]) >= 6
    # Grey images given as RGB: the public preprocessing path must hand them to the net unchanged.
    x = preprocess(np.repeat(ref["images"][..., None], 3, axis=-1), loaded.spec)
    with torch.no_grad():
        logits = loaded.module(x).double()
    probs = torch.softmax(logits, dim=1).numpy()
    assert np.abs(probs - ref["probs"]).max() <= float(PARITY)
    # Logits too: the face crops' probabilities saturate near 1, which would hide small errors.
    assert np.abs(logits.numpy() - ref["logits"]).max() <= float(PARITY)
    assert f"within {PARITY} " in loaded.spec.notes  # the card quotes the tolerance tested here


def test_astronaut_face_is_happy(loaded) -> None:
    rgb = read_image(ROOT / "assets" / "astronaut.png")
    crop = rgb[72:187, 167:282]  # the smiling face, box (177, 82)-(272, 177) plus a 10 px margin
    with torch.no_grad():
        probs = torch.softmax(loaded.module(preprocess([crop], loaded.spec)), dim=1)[0]
    assert loaded.spec.labels[int(probs.argmax())] == "happy"
    assert probs.max() > 0.9


def test_cam_layer_is_last_feature_map(loaded) -> None:
    layer = cam_layer(loaded.module, loaded.spec)
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    try:
        with torch.no_grad():
            loaded.module(torch.zeros(2, 1, 64, 64))
    finally:
        handle.remove()
    assert seen == [torch.Size([2, 128, 4, 4])]


def test_other_classes_and_channels_train() -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES["mini_xception"].build(3, 3, False)
    assert isinstance(model, MiniXception)
    x = torch.randn(4, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (4, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_odd_input_size() -> None:
    assert MiniXception(num_classes=5)(torch.randn(1, 1, 75, 75)).shape == (1, 5)


def test_no_imagenet_weights() -> None:
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        ARCHITECTURES["mini_xception"].build(7, 1, True)
