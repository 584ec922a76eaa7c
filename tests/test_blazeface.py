"""BlazeFace on LiteRT (fer.blazeface): its parts on synthetic numbers, and the whole against
MediaPipe's Tasks face detector on real pictures with the shipped models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer import blazeface
from fer.face import DETECTOR_MODELS, FaceDetector
from fer.io import read_image
from fer.weights import resolve_registered

from .conftest import ASSETS, compose_faces, threads_disagreeing
from .test_face import ASTRONAUT_BOX

SHORT = resolve_registered(DETECTOR_MODELS["short"])
FULL = resolve_registered(DETECTOR_MODELS["full"])


def test_anchor_grids_match_the_models_outputs():
    short, full = blazeface.LAYOUTS["short"].anchors(), blazeface.LAYOUTS["full"].anchors()
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Short range: a 16×16 grid (stride 8) with 2 anchors a cell, then 8×8 (three stride-16 layers) with 6.
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
    np.testing.assert_allclose(short[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[[0, 1, 48]], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48], [0.5 / 48, 1.5 / 48]])
    for anchors in (short, full):
        assert anchors.dtype == np.float32 and (anchors > 0).all() and (anchors < 1).all()


@pytest.mark.parametrize(("width", "height"), [(640, 480), (300, 451), (512, 512), (1, 20000)])
def test_letterbox_fits_the_whole_image_centred(width, height):
    size = 128
    matrix = blazeface.letterbox(width, height, size)
    corners = np.array([[0, 0, 1], [width, height, 1]], np.float64) @ matrix.T
    (x0, y0), (x1, y1) = corners
    assert min(x0, y0) >= -1e-4 and max(x1, y1) <= size + 1e-3
    assert max(x1 - x0, y1 - y0) == pytest.approx(size, rel=1e-5)  # the long side fills the input
    assert (x0 + x1) / 2 == pytest.approx(size / 2, abs=1e-3) and (y0 + y1) / 2 == pytest.approx(size / 2, abs=1e-3)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(width / height, rel=1e-4)  # aspect ratio kept


def test_weighted_nms_merges_overlaps_into_their_weighted_mean():
    scores = np.array([0.6, 0.9, 0.8])
    boxes = np.array([[10.0, 10, 30, 30], [0, 0, 20, 20], [2, 2, 22, 22]])
    keypoints = np.array([[[20.0, 20]], [[10, 10]], [[12, 12]]])
    merged = blazeface.weighted_nms(scores, boxes, keypoints, threshold=0.3)
    # 0.9 and 0.8 overlap (IoU 0.68): merged, weights 0.9/1.7 and 0.8/1.7. The 0.6 box overlaps
    # the best one by IoU 0.14 only: it stays on its own.
    assert [m[0] for m in merged] == [0.9, 0.6]
    w = np.array([0.9, 0.8]) / 1.7
    np.testing.assert_allclose(merged[0][1], w @ boxes[1:])
    np.testing.assert_allclose(merged[0][2], np.tensordot(w, keypoints[1:], axes=1))
    np.testing.assert_allclose(merged[1][1], boxes[0])
    # A higher threshold keeps all three apart, best first.
    assert [m[0] for m in blazeface.weighted_nms(scores, boxes, keypoints, threshold=0.9)] == [0.9, 0.8, 0.6]


def test_weighted_nms_ends_on_degenerate_boxes():
    """Zero-area boxes (IoU 0/0 with themselves) must neither loop forever nor vanish."""
    boxes = np.array([[5.0, 5, 5, 5], [5, 5, 5, 5]])
    merged = blazeface.weighted_nms(np.array([0.7, 0.6]), boxes, np.zeros((2, 6, 2)))
    assert [m[0] for m in merged] == [0.7, 0.6]


def test_pixel_box_truncates_and_clips_like_mediapipe():
    assert blazeface.pixel_box(10.9, 20.2, 50.7, 60.1, 100, 100) == (10, 20, 49, 59)  # size 39.8 → 39
    assert blazeface.pixel_box(-5.5, -3.0, 30.0, 30.0, 100, 100) == (0, 0, 35, 33)
    assert blazeface.pixel_box(90.0, 90.0, 130.0, 140.0, 100, 100) == (90, 90, 100, 100)
    assert blazeface.pixel_box(120.0, 5.0, 150.0, 9.0, 100, 100) == (100, 5, 100, 9)  # off the image: empty


@pytest.fixture(scope="module", params=sorted(DETECTOR_MODELS))
def detector_pair(request):
    """The same model on both engines, with a low threshold so that weak faces are compared too."""
    with FaceDetector(request.param, min_score=0.3, max_faces=10, engine="litert") as ours, \
            FaceDetector(request.param, min_score=0.3, max_faces=10, engine="mediapipe") as reference:
        yield ours, reference


def _pictures(astronaut):
    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 25, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    webcam = np.zeros((480, 640, 3), np.uint8)
    webcam[100:412, 150:462] = cv2.resize(astronaut[40:220, 135:315], (312, 312))
    return {
        "astronaut": astronaut,
        "tilted": tilted,
        "wide": cv2.copyMakeBorder(astronaut, 0, 0, 200, 100, cv2.BORDER_REFLECT),
        "tall": cv2.copyMakeBorder(astronaut, 150, 50, 0, 0, cv2.BORDER_CONSTANT),
        "webcam": webcam,
        "group": compose_faces(astronaut, ASTRONAUT_BOX, count=3, side=200),
        "coffee": read_image(ASSETS / "coffee.png"),
    }


def test_same_faces_as_mediapipe(detector_pair, astronaut):
    """Same count, boxes within 2 px, scores within 0.005, keypoints within 1 % of the face size.
    (Measured: identical on most pictures; the sampling of the letterbox warp is what differs.)"""
    ours, reference = detector_pair
    compared = 0
    for name, picture in _pictures(astronaut).items():
        got, want = ours(picture), reference(picture)
        assert len(got) == len(want), name
        for a, b in zip(got, want, strict=True):
            side = b.box[2] - b.box[0]
            np.testing.assert_allclose(a.box, b.box, atol=2, err_msg=name)
            assert a.score == pytest.approx(b.score, abs=0.005), name
            assert np.abs(a.keypoints - b.keypoints).max() <= 0.01 * side, name
            compared += 1
    assert compared >= 5


def test_detections_are_ordered_and_above_threshold(astronaut):
    group = compose_faces(astronaut, ASTRONAUT_BOX, count=3, side=200)
    net = blazeface.BlazeFace(FULL, blazeface.LAYOUTS["full"], min_score=0.6)
    found = net(group)
    assert len(found) == 3
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.6
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= group.shape[1] and 0 <= y0 < y1 <= group.shape[0]
        assert d.keypoints.shape == (6, 2) and d.keypoints.dtype == np.float32
    assert blazeface.BlazeFace(SHORT, blazeface.LAYOUTS["short"], min_score=1.0)(astronaut) == []
    assert len(blazeface.BlazeFace(SHORT, blazeface.LAYOUTS["short"], min_score=0.0)(astronaut)) >= 1


def test_a_layout_that_does_not_fit_the_model_is_refused():
    with pytest.raises(ValueError, match="192"):
        blazeface.BlazeFace(SHORT, blazeface.LAYOUTS["full"])


def test_one_detector_serves_several_threads(astronaut):
    pictures = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), astronaut[50:450, 30:480].copy()]
    with FaceDetector(engine="litert") as det:
        assert threads_disagreeing(lambda p: [f.box for f in det(p)], pictures * 2, rounds=20) == []
