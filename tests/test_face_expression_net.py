"""The PyTorch port of face-api's expression CNN: parity with the package's own JavaScript, on both
engines; its crop; Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fer.crops import box_crop, pad_to_square
from fer.errors import WeightsError
from fer.face_expression_net import FaceExpressionNet
from fer.gradcam import grad_cam
from fer.models import ARCHITECTURES, cam_layer, canonical_label, preprocess, preprocess_array, softmax
from fer.zoo import load_model

ROOT = Path(__file__).resolve().parent.parent
# Written by scripts/face_api_reference.py: @vladmandic/face-api's dist/face-api.esm.js on TF.js's 'cpu' backend.
FIXTURE = ROOT / "tests" / "fixtures" / "face_api_parity.npz"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module", params=["torch", "opencv"])
def loaded(request):
    return load_model("face_api_expression", engine=request.param)


def _inputs(reference: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(str(name), reference[f"input_{i}"]) for i, name in enumerate(reference["names"])]


def _order(loaded, reference) -> list[int]:
    """Column of each of our labels in face-api's label order."""
    theirs = [canonical_label(str(label)) for label in reference["labels"]]
    return [theirs.index(label) for label in loaded.spec.labels]


def test_labels_are_face_apis_in_canonical_names(loaded, reference) -> None:
    assert loaded.spec.labels == ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
    assert sorted(_order(loaded, reference)) == list(range(7))
    assert loaded.spec.crop == "box" and loaded.spec.margin == 0.0 and loaded.spec.input_size == 112


def test_matches_face_api_javascript(loaded, reference) -> None:
    """Every input face-api does not resize: the port's logits and probabilities within 1e-4."""
    order = _order(loaded, reference)
    checked = 0
    for i, (name, image) in enumerate(_inputs(reference)):
        square = pad_to_square(image)  # face-api's padToSquare(isCenterImage=true)
        if square.shape[0] != 112:
            continue
        logits, _ = loaded.run(preprocess_array([square], loaded.spec))
        assert np.abs(logits[0] - reference["logits"][i][order]).max() <= 1e-4, name
        assert np.abs(softmax(logits)[0] - reference["probs"][i][order]).max() <= 1e-4, name
        checked += 1
    assert checked >= 6
    # Not only saturated probabilities: some inputs leave several classes in play.
    assert (reference["probs"].max(axis=1) < 0.9).sum() >= 2


def _tf_resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """TF.js ``resizeBilinear(alignCorners=false, halfPixelCenters=false)``: source = dest × in/out."""
    height, width = image.shape[:2]

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.arange(size) * (n / size)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n - 1), (src - low)[:, None]

    (y0, y1, dy), (x0, x1, dx) = axis(height), axis(width)
    img = image.astype(np.float64)
    top = img[y0][:, x0] * (1 - dx[None]) + img[y0][:, x1] * dx[None]
    bottom = img[y1][:, x0] * (1 - dx[None]) + img[y1][:, x1] * dx[None]
    return top * (1 - dy[:, :, None]) + bottom * dy[:, :, None]


def test_resized_input_differs_only_by_the_resampling(reference) -> None:
    """face-api resizes a 150x150 input with TF.js's bilinear resize: fed that, the port matches it
    too. Our preprocessing shrinks with OpenCV's area filter instead (what a browser canvas, face-api's
    other path, does more nearly); it gives the same expression."""
    loaded = load_model("face_api_expression", engine="torch")
    order = _order(loaded, reference)
    ((i, image),) = [(i, img) for i, (_, img) in enumerate(_inputs(reference)) if max(img.shape[:2]) != 112]
    x = (_tf_resize_bilinear(image, 112).astype(np.float32).transpose(2, 0, 1)[None]
         - np.asarray(loaded.spec.mean, np.float32)[None, :, None, None] * 255) / 255
    logits = loaded.run(np.ascontiguousarray(x, np.float32))[0][0]
    assert np.abs(logits - reference["logits"][i][order]).max() <= 1e-4
    ours = softmax(loaded.run(preprocess_array([image], loaded.spec))[0])[0]
    assert ours.argmax() == reference["probs"][i][order].argmax()


def test_dequantised_weights_lie_on_the_8_bit_grid(loaded) -> None:
    """TF.js stored every filter as 8-bit codes: each converted tensor holds at most 256 values."""
    state = loaded.module.state_dict()
    filters = [k for k in state if k.endswith("weight")]
    assert len(filters) == 1 + 3 * 2 + 3 * 4 * 2 + 1  # conv0, 3 separable convs, 12 more, fc
    for key in filters:
        assert len(torch.unique(state[key])) <= 256, key
    assert sum(v.numel() for v in state.values()) == 323_687


def test_the_astronaut_smiles(loaded, astronaut, detector) -> None:
    (face,) = detector(astronaut)
    crop, _, _ = box_crop(astronaut, face.keypoints, face.box, loaded.spec.margin or 0.0, 224)
    probs = softmax(loaded.run(preprocess_array([crop], loaded.spec))[0])[0]
    assert loaded.spec.labels[int(probs.argmax())] == "happy" and probs.max() > 0.9


def test_cam_layer_and_linear_head_cam_match_autograd(loaded, reference) -> None:
    """Grad-CAM of the real weights: the backward-free maps equal autograd's, for several classes."""
    assert loaded.cam is not None
    images = [pad_to_square(img) for _, img in _inputs(reference)]
    x = preprocess_array([img for img in images if img.shape[0] == 112], loaded.spec)
    logits, features = loaded.run(x, features=True)
    assert features is not None and features.shape == (len(x), 256, 7, 7)
    layer = cam_layer(loaded.module, loaded.spec)
    blank = 0
    for targets in ([1] * len(x), [int(t) for t in logits.argmin(axis=1)], [i % 7 for i in range(len(x))]):
        want = grad_cam(loaded.module, layer, torch.from_numpy(x), targets, size=56)
        got = loaded.cam(features, targets, size=56)
        assert got.shape == want.shape == (len(x), 56, 56)
        assert np.abs(got - want).max() < 1e-4
        blank += int((want.max(axis=(1, 2)) == 0).sum())
    assert blank < 3 * len(x) // 2  # mostly real maps, not blanks compared with blanks


def test_builds_for_other_classes_and_sizes_and_trains() -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES["face_expression_net"].build(3, 1, False)
    assert isinstance(model, FaceExpressionNet)
    logits = model(torch.randn(2, 1, 96, 96))
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        ARCHITECTURES["face_expression_net"].build(7, 3, True)
    assert preprocess([np.zeros((50, 50, 3), np.uint8)], load_model("face_api_expression", engine="torch").spec).shape \
        == (1, 3, 112, 112)
