"""Face stage on real images with the shipped BlazeFace models (LiteRT by default; MediaPipe too)."""

from __future__ import annotations

import io
import logging
import sys

import numpy as np
import pytest
from PIL import Image

from fer.crops import crop_face
from fer.errors import InputError
from fer.face import DETECTOR_MODELS, FaceDetector
from fer.io import read_image

from .conftest import NO_FACE, compose_faces

# Hand-checked: the astronaut's face spans roughly x 175..275, y 80..180 in the 512x512 image.
ASTRONAUT_BOX = (177, 82, 272, 177)


def test_astronaut_one_face_plausible_box(detector, astronaut):
    faces = detector(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    np.testing.assert_allclose(face.box, ASTRONAUT_BOX, atol=12)
    assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8
    assert face.keypoints.shape == (6, 2) and face.crop_keypoints.shape == (6, 2)
    # Eyes are in the upper half of the box, mouth below the nose.
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    assert right_eye[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_crop_levels_the_eyes(detector, astronaut):
    import cv2

    tilted = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 30, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    face = detector(tilted)[0]
    eyes = face.keypoints[:2]
    assert abs(eyes[1, 1] - eyes[0, 1]) > 10  # tilted in the image …
    crop_eyes = face.crop_keypoints[:2]
    assert abs(crop_eyes[1, 1] - crop_eyes[0, 1]) < 1.0  # … level in the crop


def test_crop_keypoints_follow_the_affine(detector, astronaut):
    face = detector(astronaut)[0]
    mapped = face.keypoints @ face.to_crop[:, :2].T + face.to_crop[:, 2]
    np.testing.assert_allclose(mapped, face.crop_keypoints, atol=1e-3)


def test_margin_changes_crop_scale(astronaut, detector):
    face = detector(astronaut)[0]
    _, tight, _ = crop_face(astronaut, face.keypoints, face.box, margin=0.0, crop_size=100)
    _, loose, _ = crop_face(astronaut, face.keypoints, face.box, margin=0.5, crop_size=100)
    eye_distance = lambda kp: np.linalg.norm(kp[1] - kp[0])  # noqa: E731
    assert eye_distance(tight) == pytest.approx(2.0 * eye_distance(loose), rel=1e-3)
    with pytest.raises(InputError):
        crop_face(astronaut, face.keypoints, face.box, margin=-0.1)


def test_no_face(detector):
    assert detector(read_image(NO_FACE)) == []
    assert detector(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector(np.full((100, 20000, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("engine", ["litert", "mediapipe"])
@pytest.mark.parametrize("model", sorted(DETECTOR_MODELS))
def test_several_faces_largest_first(astronaut, model, engine):
    canvas = compose_faces(astronaut, ASTRONAUT_BOX, count=3, side=220)
    # The short-range model is made for one near face: on a wide group picture its scores drop to
    # ~0.4 (measured), which is why the full-range model is offered for group photos.
    min_score = 0.3 if model == "short" else 0.5
    with FaceDetector(model, min_score=min_score, engine=engine) as det:
        assert det.engine == engine
        faces = det(canvas)
        assert len(faces) == 3
        areas = [f.area for f in faces]
        assert areas == sorted(areas, reverse=True)
        assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)  # largest is leftmost
    with FaceDetector(model, min_score=min_score, max_faces=2, engine=engine) as det:
        assert len(det(canvas)) == 2


def test_min_score_filters(astronaut):
    with FaceDetector(min_score=0.99) as strict:
        assert strict(astronaut) == []


def test_exif_rotated_copy_same_box(detector, astronaut):
    sideways = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° counter-clockwise to display" undoes ROTATE_270
    buf = io.BytesIO()
    sideways.save(buf, format="JPEG", exif=exif, quality=95)
    face = detector(read_image(buf.getvalue()))[0]
    np.testing.assert_allclose(face.box, detector(astronaut)[0].box, atol=4)


def test_face_at_border_clipped(detector, astronaut):
    # The face cut by the top and left edges (by about 13 and 8 pixels); shifted further, it is no
    # longer found at all, and the test would check nothing.
    shifted = np.roll(astronaut, shift=(-90, -190), axis=(0, 1))[:260, :260]
    faces = detector(shifted)
    assert faces, "the cut face was not found: nothing to check"
    for face in faces:
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= 260 and 0 <= y0 < y1 <= 260
    assert faces[0].box[:2] == (0, 0)  # clipped at the edges it crosses


def test_bad_options():
    for kwargs in ({"model": "huge"}, {"min_score": 2.0}, {"max_faces": 0}, {"max_faces": 1000}, {"margin": -1},
                   {"engine": "tensorrt"}):
        with pytest.raises(InputError):
            FaceDetector(**kwargs)


def test_bad_image_type(detector):
    with pytest.raises(InputError, match="uint8"):
        detector(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("engine", ["litert", "mediapipe"])
def test_close_is_idempotent(engine, astronaut):
    det = FaceDetector(engine=engine)
    det.close()
    det.close()
    assert det.closed
    with pytest.raises(RuntimeError, match="closed"):
        det(astronaut)


def test_auto_engine_is_litert_else_mediapipe(monkeypatch, caplog, astronaut):
    with FaceDetector() as det:
        assert det.engine == "litert"
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if LiteRT were not installed
    with caplog.at_level(logging.WARNING, logger="fer.face"), FaceDetector() as det:
        assert det.engine == "mediapipe"
        assert len(det(astronaut)) == 1
    assert "LiteRT is not installed" in caplog.text


_LEFT_OPEN = """
import atexit, sys
left = []
# Registered first, so it runs last: after fer's own exit hook.
atexit.register(lambda: print("closed at exit:", all(d.closed for d in left), flush=True))
if FIRST == "mediapipe":
    import mediapipe  # noqa: F401
import numpy as np
from fer.face import FaceDetector
left.append(FaceDetector(engine="mediapipe"))
left[0](np.zeros((64, 64, 3), np.uint8))
"""


@pytest.mark.parametrize("first", ["fer", "mediapipe"])
def test_a_mediapipe_detector_left_open_is_closed_at_exit_without_a_traceback(first):
    """mediapipe 1.2.3 prints a traceback when a detector it still holds is finalised at module
    teardown; fer closes its detectors at exit instead (a plain atexit hook), whichever is imported first."""
    import os
    import subprocess

    from .conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FER_NATIVE_LOGS", None)
    result = subprocess.run([sys.executable, "-c", _LEFT_OPEN.replace("FIRST", repr(first))], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "closed at exit: True"
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


def test_python_api_prints_nothing_to_stderr(tmp_path):
    """Native libraries log on first use and at exit; a library user's terminal shows none of it,
    whichever of mediapipe and fer is imported first."""
    import os
    import subprocess

    from .conftest import ASTRONAUT, ROOT

    code = ("import mediapipe, fer\n"
            f"pipe = fer.load(saliency='face-prior', attention=True)\n"
            f"print([p.label for p in pipe({str(ASTRONAUT)!r})])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FER_NATIVE_LOGS", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['happy']"
    assert result.stderr == ""


def test_pad_to_square_centres_with_zeros_odd_pixel_after() -> None:
    from fer.crops import pad_to_square

    tall = np.full((6, 3, 3), 7, np.uint8)
    out = pad_to_square(tall)
    assert out.shape == (6, 6, 3)
    assert (out[:, :1] == 0).all() and (out[:, 1:4] == 7).all() and (out[:, 4:] == 0).all()  # 1 before, 2 after
    wide = pad_to_square(np.full((2, 5, 3), 9, np.uint8))
    assert (wide[:1] == 0).all() and (wide[1:3] == 9).all() and (wide[3:] == 0).all()
    square = np.zeros((4, 4, 3), np.uint8)
    assert pad_to_square(square) is square


def test_box_crop_is_the_box_padded_not_the_image_around_it(astronaut) -> None:
    from fer.crops import box_crop, pad_to_square

    kp = np.zeros((6, 2), np.float32)
    x0, y0, x1, y1 = 180, 90, 260, 190  # 80 wide, 100 high: padded left and right with black
    crop, _, to_crop = box_crop(astronaut, kp, (x0, y0, x1, y1), 0.0, 100)
    np.testing.assert_array_equal(crop, pad_to_square(astronaut[y0:y1, x0:x1]))
    assert (crop[:, :10] == 0).all() and (crop[:, 90:] == 0).all()
    np.testing.assert_array_equal(crop[:, 10:90], astronaut[y0:y1, x0:x1])
    # Pixel edges of the padded square map to the crop's edges.
    corners = np.array([[x0 - 10 - 0.5, y0 - 0.5], [x1 + 10 - 0.5, y1 - 0.5]]) @ to_crop[:, :2].T + to_crop[:, 2]
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [99.5, 99.5]], atol=1e-4)
    # A box over the image border is clipped first, then padded symmetrically.
    edge, _, _ = box_crop(astronaut, kp, (-40, 100, 60, 200), 0.0, 100)
    assert (edge[:, :20] == 0).all() and (edge[:, 80:] == 0).all()
    np.testing.assert_array_equal(edge[:, 20:80], astronaut[100:200, 0:60])
    with pytest.raises(InputError, match="outside"):
        box_crop(astronaut, kp, (600, 600, 700, 700))


def test_a_face_gets_the_other_styles_asked_for(detector, astronaut) -> None:
    from fer.crops import CropStyle, box_crop

    box_style = CropStyle("box", 0.0)
    (plain,) = detector(astronaut)
    assert plain.other_crops == {}  # the detector cuts its own crop only
    face = plain.with_crops(astronaut, [box_style, CropStyle()])
    np.testing.assert_array_equal(face.crop, plain.crop)  # the main crop is untouched
    assert face.style == CropStyle() and list(face.other_crops) == [box_style]
    assert face.with_crops(astronaut, [box_style]) is face
    np.testing.assert_array_equal(face.crop_in(box_style), box_crop(astronaut, face.keypoints, face.box, 0.0, 224)[0])
    assert face.crop_in(CropStyle()) is face.crop
    with pytest.raises(InputError, match="no 'box' crop with margin 0.1"):
        face.crop_in(CropStyle("box", 0.1))
    with pytest.raises(InputError, match="unknown crop kind"):
        CropStyle("rotated")  # type: ignore[arg-type]
