"""Saliency predictors, the registry, and the crop × map product."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.errors import InputError
from fer.research.saliency_metrics import cc
from fer.saliency import (
    DEFAULT_SALIENCY,
    DEFAULT_SALIENCY_FLOOR,
    SALIENCY_REGISTRY,
    apply_saliency,
    available_saliency,
    load_saliency,
    saliency_status,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# Frontal face keypoints in a 224 crop, as fer.face places them on assets/astronaut.png
# (right eye, left eye, nose tip, mouth centre, right ear, left ear).
FRONTAL = np.array(
    [[70, 74], [145, 74], [105, 109], [107, 145], [32, 96], [191, 95]], np.float32
)
IMAGE_ONLY = ["spectral-residual"]


def _eye_peak(m: np.ndarray, kp: np.ndarray) -> bool:
    """True if the map's maximum lies within a quarter inter-ocular distance of an eye."""
    y, x = np.unravel_index(np.argmax(m), m.shape)
    radius = 0.25 * np.linalg.norm(kp[1] - kp[0])
    return min(np.hypot(x + 0.5 - kp[i, 0], y + 0.5 - kp[i, 1]) for i in (0, 1)) <= radius


def test_registry_and_status(monkeypatch):
    monkeypatch.delenv("FER_MLNET_WEIGHTS", raising=False)
    assert DEFAULT_SALIENCY == "face-prior" and DEFAULT_SALIENCY_FLOOR == 0.3
    status = saliency_status()
    assert set(status) == set(SALIENCY_REGISTRY) >= {"face-prior", "spectral-residual", "mlnet"}
    assert status["face-prior"] == status["spectral-residual"] == "ready"
    assert available_saliency() == ["face-prior", "spectral-residual"]
    with pytest.raises(InputError, match="unknown saliency predictor"):
        load_saliency("nope")


@pytest.mark.parametrize("name", ["face-prior", "spectral-residual"])
def test_predictor_contract(name):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    predictor = load_saliency(name)
    assert predictor.name == name
    assert "not ML-Net" in predictor.description and "\n" not in predictor.description
    maps = predictor(crops, np.repeat(FRONTAL[None], 3, axis=0))
    assert maps.shape == (3, 224, 224) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    with pytest.raises(InputError):
        predictor(crops.astype(np.float32), None)


def test_face_prior_peaks_on_eyes_for_frontal_keypoints():
    maps = load_saliency("face-prior")(np.zeros((1, 224, 224, 3), np.uint8), FRONTAL[None])
    assert _eye_peak(maps[0], FRONTAL)
    # The eyes outrank the nose tip and the mouth, which outrank the crop's corners.
    at = lambda p: maps[0, int(p[1]), int(p[0])]  # noqa: E731
    assert at(FRONTAL[0]) > at(FRONTAL[2]) and at(FRONTAL[0]) > at(FRONTAL[3])
    assert min(at(FRONTAL[2]), at(FRONTAL[3])) > 5 * max(maps[0, 0, 0], maps[0, -1, -1])


def test_face_prior_follows_the_keypoints_and_scales_with_them():
    prior = load_saliency("face-prior")
    shifted = FRONTAL * 0.5 + np.array([100, 100], np.float32)  # a smaller face, lower right
    maps = prior(np.zeros((2, 224, 224, 3), np.uint8), np.stack([FRONTAL, shifted]))
    assert _eye_peak(maps[1], shifted)
    spread = [(m > 0.5).sum() for m in maps]
    assert spread[1] < spread[0] / 3  # half the size, about a quarter of the area
    with pytest.raises(InputError, match="keypoints"):
        prior(np.zeros((1, 224, 224, 3), np.uint8), None)


def test_face_prior_on_the_astronaut_photo():
    """Real photo, real detector: the prior's peak lands on one of the detected eyes."""
    from fer.face import FaceDetector
    from fer.io import read_image

    image = read_image(ASSETS / "astronaut.png")
    with FaceDetector() as detector:
        face = detector(image)[0]
    maps = load_saliency("face-prior")(face.crop[None], face.crop_keypoints[None])
    assert _eye_peak(maps[0], face.crop_keypoints)


def test_spectral_residual_finds_a_blob_and_differs_from_face_prior():
    rng = np.random.default_rng(1)
    grey = rng.normal(110, 8, (224, 224))
    yy, xx = np.mgrid[0:224, 0:224]
    grey += 120 * np.exp(-((yy - 60) ** 2 + (xx - 170) ** 2) / (2 * 6**2))
    crop = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)[None]
    sr = load_saliency("spectral-residual")(crop, FRONTAL[None])[0]
    y, x = np.unravel_index(np.argmax(sr), sr.shape)
    assert np.hypot(y - 60, x - 170) < 15
    fp = load_saliency("face-prior")(crop, FRONTAL[None])[0]
    assert cc(sr, fp) < 0.5


def test_spectral_residual_is_opencv_contribs():
    """The predictor is OpenCV's own spectral residual (opencv-contrib is pinned), max-normalised,
    on real face crops of two sizes and in a batch."""
    from fer.io import read_image

    face = read_image(ASSETS / "astronaut.png")[80:300, 160:380]
    crops = np.stack([cv2.resize(face, (224, 224)), cv2.resize(face[:, ::-1], (224, 224))])
    ours = load_saliency("spectral-residual")(crops, None)
    small = load_saliency("spectral-residual")(crops[:1, ::2, ::2].copy(), None)[0]
    for crop, got in [(crops[0], ours[0]), (crops[1], ours[1]), (crops[0, ::2, ::2], small)]:
        ok, ref = cv2.saliency.StaticSaliencySpectralResidual_create().computeSaliency(crop[..., ::-1].copy())
        assert ok and got.shape == ref.shape
        np.testing.assert_allclose(got, ref / ref.max(), rtol=0, atol=1e-6)


def test_uniform_crop_gives_no_preference():
    maps = load_saliency("spectral-residual")(np.full((1, 64, 64, 3), 128, np.uint8), None)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_apply_saliency_by_hand():
    crops = np.full((1, 2, 2, 3), 200, np.uint8)
    maps = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)
    out = apply_saliency(crops, maps, 0.3)
    # gain = 0.3 + 0.7 · map: 0.3 → 60, 1.0 → 200, 0.65 → 130, 0.475 → 95.
    assert out[0, :, :, 0].tolist() == [[60, 200], [130, 95]]
    pure = apply_saliency(crops, maps, 0.0)  # the paper's product
    assert pure[0, :, :, 0].tolist() == [[0, 200], [100, 50]]
    assert (apply_saliency(crops, maps, 1.0) == crops).all()
    assert out.dtype == np.uint8 and out.shape == crops.shape
    with pytest.raises(InputError):
        apply_saliency(crops, maps, 1.5)
    with pytest.raises(InputError):
        apply_saliency(crops, maps[:, :1], 0.3)


def test_every_face_prior_weight_has_its_sources():
    """The findings behind the prior's weights are written once (fer.texts) and cover every region."""
    import re

    from fer.saliency import FACE_PRIOR_REGIONS
    from fer.texts import FACE_PRIOR_EVIDENCE

    regions = {name.removeprefix("right_").removeprefix("left_").replace("eye", "eyes") for name in FACE_PRIOR_REGIONS}
    assert regions == set(FACE_PRIOR_EVIDENCE)
    assert all(re.search(r"\((?:[^()]*\b(?:19|20)\d\d\b)", text) for text in FACE_PRIOR_EVIDENCE.values())


def test_weight_by_saliency_is_the_product_in_batches_and_reuses_given_maps():
    from fer.saliency import apply_saliency, load_saliency, weight_by_saliency

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    keypoints = np.tile(np.array([[16, 18], [32, 18], [24, 28], [24, 36], [8, 20], [40, 20]], np.float32), (5, 1, 1))
    prior = load_saliency("face-prior")
    want = apply_saliency(crops, prior(crops, keypoints), 0.25)
    assert np.array_equal(weight_by_saliency(crops, keypoints, prior, 0.25), want)
    assert np.array_equal(weight_by_saliency(crops, keypoints, prior, 0.25, batch_size=2), want)
    flat = np.ones((5, 48, 48), np.float32)  # given maps are used instead of the predictor's
    assert np.array_equal(weight_by_saliency(crops, keypoints, prior, 0.25, maps=flat), crops)
