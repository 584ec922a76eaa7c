"""Face stage: BlazeFace face detection and eye-levelled square crops.

The detector models are MediaPipe's ``.tflite`` files shipped in ``weights/`` (taken from the
mediapipe 0.10.21 wheel; mediapipe 1.x ships no models and has no ``mp.solutions``). They run on a
bare LiteRT interpreter (`fer.blazeface`, the default: 40 % cheaper a frame, half the cost after an
idle gap) or through MediaPipe's Tasks face detector, which gives the same faces.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import re
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from fer import blazeface
from fer.errors import InputError
from fer.limits import DEFAULT_MAX_FACES, MAX_FACES
from fer.weights import WEIGHTS_DIR, verify

log = logging.getLogger(__name__)

#: Set FER_NATIVE_LOGS=1 to see MediaPipe/LiteRT's own stderr lines (hidden by default).
_SHOW_NATIVE_LOGS = os.environ.get("FER_NATIVE_LOGS") == "1"

# Detectors still open at interpreter exit are closed before it: closing them later, during
# module teardown, is what makes mediapipe 1.2.3 print a traceback. mediapipe runs every native
# call on a concurrent.futures thread pool, and those pools stop accepting work when threading
# shuts down, before any `atexit` callback; so the close is registered with threading's own exit
# hook (the one concurrent.futures itself uses), where the pools still run, whichever of mediapipe
# and this module was imported first.
_open_detectors: weakref.WeakSet[FaceDetector] = weakref.WeakSet()


def _close_all() -> None:
    for detector in list(_open_detectors):
        detector.close()


_register_exit = getattr(threading, "_register_atexit", atexit.register)
_register_exit(_close_all)


@contextlib.contextmanager
def _stderr_to(fd: int) -> Iterator[int | None]:
    """Point file descriptor 2 at ``fd`` (taking ownership of ``fd``) for the duration.

    Yields the original stderr's descriptor (valid inside the block only), or None where fd 2 is
    left alone: FER_NATIVE_LOGS=1, or no real fd 2 (embedded interpreters, some test runners).
    """
    if _SHOW_NATIVE_LOGS:
        os.close(fd)
        yield None
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        os.close(fd)
        yield None
        return
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield saved
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to file descriptor 2 (LiteRT's INFO/WARNING lines, which no
    environment variable turns off) while a detector starts or closes."""
    with _stderr_to(os.open(os.devnull, os.O_WRONLY)):
        yield


#: Keypoint names in MediaPipe's order (the subject's right eye is on the image's left).
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion",
)

#: Detector models: name → (file in weights/, SHA-256, what it is for).
DETECTOR_MODELS: dict[str, tuple[str, str, str]] = {
    "short": (
        "face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "BlazeFace short range: faces within ~2 m of the camera (webcam, portraits); fastest",
    ),
    "full": (
        "face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "BlazeFace full range (sparse): smaller and farther faces, group photos; ~3x slower",
    ),
}

#: What runs a detector model: ``"auto"`` (LiteRT when installed, else MediaPipe), ``"litert"``
#: (`fer.blazeface`) or ``"mediapipe"`` (MediaPipe's Tasks face detector, the reference).
DetectorEngine = Literal["auto", "litert", "mediapipe"]

#: Default margin around the detector's box, as a fraction of the box side on each side.
DEFAULT_MARGIN = 0.2
#: Default side of the square face crop, in pixels.
DEFAULT_CROP_SIZE = 224


#: How a square face crop is made from the detector's box: ``"aligned"`` (`crop_face`: centred on
#: the box, rotated so the eyes are level, border pixels repeated) or ``"box"`` (`box_crop`: the box
#: itself, axis-aligned, zero-padded to a centred square, as face-api does).
CropKind = Literal["aligned", "box"]


@dataclass(frozen=True)
class CropStyle:
    """How one model's face crop is cut: the ``kind`` of square and the ``margin`` around the
    detector's box (a fraction of the box side, on each side, >= 0)."""

    kind: CropKind = "aligned"
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.kind not in get_args(CropKind):
            raise InputError(f"unknown crop kind {self.kind!r}; choose one of {', '.join(get_args(CropKind))}")
        if not 0.0 <= self.margin <= 1.0:
            raise InputError(f"margin must be in [0, 1], got {self.margin}")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: ``(x0, y0, x1, y1)`` int pixels in the image, clipped to it.
        score: detector confidence in [0, 1].
        keypoints: ``(6, 2)`` float32 image pixels (x, y), order `KEYPOINT_NAMES`.
        crop: ``(S, S, 3)`` uint8 RGB square crop in ``style`` (by default with margin, rotated so
            the eyes are level).
        crop_keypoints: ``(6, 2)`` float32 keypoints in crop pixels.
        to_crop: ``(2, 3)`` float32 affine matrix mapping image pixels to crop pixels.
        style: how ``crop`` was cut; None for a ready-made crop of unknown style
            (`fer.pipeline.Pipeline.predict_crops`), which every model then gets as it is.
        other_crops: ``(S, S, 3)`` uint8 RGB crops of the same face in other styles, for models
            trained on another crop (see `crop_in`).
    """

    box: tuple[int, int, int, int]
    score: float
    keypoints: np.ndarray
    crop: np.ndarray
    crop_keypoints: np.ndarray
    to_crop: np.ndarray
    style: CropStyle | None = None
    other_crops: Mapping[CropStyle, np.ndarray] = field(default_factory=dict)

    @property
    def area(self) -> int:
        """Box area in pixels."""
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def crop_in(self, style: CropStyle) -> np.ndarray:
        """This face's ``(S, S, 3)`` uint8 RGB crop cut in ``style``.

        Raises:
            InputError: the face was detected without that style (ask the `FaceDetector` for it).
        """
        if self.style is None or style == self.style:
            return self.crop
        try:
            return self.other_crops[style]
        except KeyError:
            raise InputError(f"this face has no {style.kind!r} crop with margin {style.margin}: detect it with "
                             "a FaceDetector given that style (other_styles)") from None


def crop_face(
    image: np.ndarray,
    keypoints: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = DEFAULT_MARGIN,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a square, eye-levelled crop around a face.

    The crop is centred on the box centre, its side is the box's longer side times
    ``1 + 2 * margin``, and it is rotated about that centre so the line between the eyes is
    horizontal. Pixels outside the image repeat the border.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints: ``(K, 2)`` float image pixels; rows 0 and 1 are the right and left eye.
        box: ``(x0, y0, x1, y1)`` face box in image pixels.
        margin: extra context on each side, as a fraction of the box side (>= 0).
        crop_size: side ``S`` of the output crop.
    Returns:
        ``(crop (S, S, 3) uint8, crop_keypoints (K, 2) float32, to_crop (2, 3) float32)``.
    """
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    dx, dy = keypoints[1] - keypoints[0]
    theta = math.atan2(dy, dx)
    scale = crop_size / side
    # Rotation by -theta brings the eye line to horizontal; then scale and move the centre to S/2.
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    linear = scale * rot
    shift = crop_size / 2.0 - linear @ centre
    to_crop = np.hstack([linear, shift[:, None]]).astype(np.float32)
    crop = cv2.warpAffine(
        image, to_crop, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    crop_kp = (keypoints @ linear.T + shift).astype(np.float32)
    return crop, crop_kp, to_crop


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """Zero-pad the shorter side of ``(H, W, C)`` to a centred square, as face-api's
    ``padToSquare(isCenterImage=true)`` does: the odd pixel of padding goes after the image
    (JavaScript's ``Math.round`` of the half difference is appended, the rest prepended)."""
    height, width = image.shape[:2]
    diff = abs(height - width)
    if diff == 0:
        return image
    after, before = (diff + 1) // 2, diff // 2
    pads = [(before, after), (0, 0)] if height < width else [(0, 0), (before, after)]
    return np.pad(image, pads + [(0, 0)] * (image.ndim - 2))


def box_crop(
    image: np.ndarray,
    keypoints: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = 0.0,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """face-api's crop: the axis-aligned box, clipped to the image, zero-padded to a centred square.

    The box grows by ``margin`` of its width (height) on the left and right (top and bottom), is
    clipped to the image and floored to whole pixels (face-api's ``clipAtImageBorders``), padded
    with black by `pad_to_square` and resized to ``crop_size``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints: ``(K, 2)`` float image pixels.
        box: ``(x0, y0, x1, y1)`` face box in image pixels.
        margin: extra context on each side, as a fraction of the box side (>= 0).
        crop_size: side ``S`` of the output crop.
    Returns:
        ``(crop (S, S, 3) uint8, crop_keypoints (K, 2) float32, to_crop (2, 3) float32)``, as `crop_face`.
    """
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    left, top = max(x0 - grow_x, 0.0), max(y0 - grow_y, 0.0)
    width = min(x1 + grow_x - left, image.shape[1] - left)
    height = min(y1 + grow_y - top, image.shape[0] - top)
    left_px, top_px, width_px, height_px = (max(int(math.floor(v)), 0) for v in (left, top, width, height))
    if width_px == 0 or height_px == 0:
        raise InputError(f"face box {box} lies outside the {image.shape[1]}x{image.shape[0]} image")
    square = pad_to_square(image[top_px:top_px + height_px, left_px:left_px + width_px])
    side = square.shape[0]
    interp = cv2.INTER_AREA if side >= crop_size else cv2.INTER_LINEAR
    crop = square if side == crop_size else cv2.resize(square, (crop_size, crop_size), interpolation=interp)
    # The padded square's origin in image pixels, and cv2.resize's half-pixel centres.
    origin_x = left_px - (side - width_px) // 2
    origin_y = top_px - (side - height_px) // 2
    scale = crop_size / side
    shift = 0.5 * scale - 0.5
    to_crop = np.array([[scale, 0.0, shift - scale * origin_x], [0.0, scale, shift - scale * origin_y]], np.float32)
    crop_kp = (keypoints @ to_crop[:, :2].T + to_crop[:, 2]).astype(np.float32)
    return np.ascontiguousarray(crop), crop_kp, to_crop


def cut_crop(
    image: np.ndarray, keypoints: np.ndarray, box: tuple[float, float, float, float], style: CropStyle,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face crop in ``style``: `crop_face` or `box_crop` (same arguments and returns)."""
    cut = crop_face if style.kind == "aligned" else box_crop
    return cut(image, keypoints, box, style.margin, crop_size)


def _aligned(image: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``image`` whose buffer starts on a 64-byte boundary.

    LiteRT copies any input that is not so aligned, so handing it an aligned buffer costs no more
    than the copy it would make anyway.
    """
    raw = np.empty(image.nbytes + alignment, np.uint8)
    offset = (-raw.ctypes.data) % alignment
    out = raw[offset:offset + image.nbytes].view(image.dtype).reshape(image.shape)
    np.copyto(out, image)
    return out


# Lines native code writes: absl/glog ("W0000 00:00:…", "WARNING: Logging before InitGoogle()")
# and LiteRT ("INFO: [file.cc:12] …", "INFO: Created TensorFlow Lite …", "WARNING: [model_load.cc…").
_NATIVE_LOG_LINE = re.compile(rb"^([IWEF]\d{4} \d\d:\d\d:\d\d|(INFO|WARNING|ERROR): (\[|Created TensorFlow|Logging before))")


@contextlib.contextmanager
def native_logs_filtered() -> Iterator[None]:
    """Drop MediaPipe/LiteRT's native log lines from stderr for the duration, pass everything else.

    LiteRT warns (once per process, at an unpredictable first frame) about tensor alignment inside
    MediaPipe's own preprocessing; no option turns it off. The CLI runs under this filter so a
    user sees only our own messages. Set FER_NATIVE_LOGS=1 to see everything.
    """
    read_end, write_end = os.pipe()
    pumps: list[threading.Thread] = []
    try:
        with _stderr_to(write_end) as original:
            if original is None:
                os.close(read_end)
                yield
                return
            # The pump gets its own copy of the original stderr, valid after the block ends.
            pump = threading.Thread(target=_forward_non_native, args=(read_end, os.dup(original)),
                                    name="fer-stderr-filter", daemon=True)
            pumps.append(pump)
            pump.start()
            yield
    finally:
        # Leaving the block restored fd 2, closing the pipe's last write end: the pump sees EOF.
        for pump in pumps:
            pump.join(timeout=5)


def _forward_non_native(read_fd: int, sink_fd: int) -> None:
    """Copy lines from ``read_fd`` to ``sink_fd``, dropping native log lines; closes both at EOF."""
    with os.fdopen(read_fd, "rb") as source, os.fdopen(sink_fd, "wb", buffering=0) as sink:
        for line in source:
            if not _NATIVE_LOG_LINE.match(line):
                sink.write(line)


class FaceDetector:
    """BlazeFace face detector returning `Face` records, largest first.

    Use as a context manager or call `close()`: with the MediaPipe engine (mediapipe 1.2.3) a
    detector left open prints a traceback at interpreter exit. One detector can serve several
    threads (their calls to the network take turns).
    """

    def __init__(
        self,
        model: Literal["short", "full"] = "short",
        *,
        min_score: float = 0.5,
        max_faces: int = DEFAULT_MAX_FACES,
        margin: float = DEFAULT_MARGIN,
        crop_size: int = DEFAULT_CROP_SIZE,
        engine: DetectorEngine = "auto",
        crop: CropKind = "aligned",
        other_styles: Sequence[CropStyle] = (),
    ) -> None:
        """Args:
            model: a key of `DETECTOR_MODELS`.
            min_score: confidence threshold in [0, 1].
            max_faces: most faces returned, in [1, `fer.limits.MAX_FACES`].
            margin: crop margin per side, as a fraction of the box side, in [0, 1].
            crop_size: side of the square crops, in pixels.
            engine: see `DetectorEngine`; ``"auto"`` picks LiteRT and says in the log why not when
                it cannot.
            crop: how `Face.crop` is cut (`CropKind`), with ``margin``.
            other_styles: more crops of each face, for models trained on other crops
                (`Face.other_crops`, `Face.crop_in`).
        """
        if model not in DETECTOR_MODELS:
            raise InputError(f"unknown detector {model!r}; choose one of {', '.join(DETECTOR_MODELS)}")
        if not 0.0 <= min_score <= 1.0:
            raise InputError(f"min_score must be in [0, 1], got {min_score}")
        if not 1 <= max_faces <= MAX_FACES:
            raise InputError(f"max_faces must be between 1 and {MAX_FACES}, got {max_faces}")
        if margin < 0 or margin > 1:
            raise InputError(f"margin must be in [0, 1], got {margin}")
        if engine not in get_args(DetectorEngine):
            raise InputError(f"unknown detector engine {engine!r}; choose one of {', '.join(get_args(DetectorEngine))}")
        self.model = model
        self.min_score = min_score
        self.max_faces = max_faces
        self.margin = margin
        self.crop_size = crop_size
        #: How `Face.crop` is cut, and the other styles every face also gets.
        self.style = CropStyle(crop, margin)
        self.other_styles = tuple(dict.fromkeys(s for s in other_styles if s != self.style))
        filename, sha256, _ = DETECTOR_MODELS[model]
        path = verify(Path(WEIGHTS_DIR) / filename, sha256)
        self._lock = threading.Lock()
        self._detector: Any = None  # mediapipe's FaceDetector
        self._blazeface: blazeface.BlazeFace | None = None
        if engine == "auto":
            try:
                import ai_edge_litert.interpreter  # noqa: F401
            except ImportError as exc:
                log.warning("face detector on MediaPipe: LiteRT is not installed (%s)", exc)
                engine = "mediapipe"
            else:
                engine = "litert"
        #: The engine in use: ``"litert"`` or ``"mediapipe"``.
        self.engine: str = engine
        if engine == "litert":
            with _native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on stderr
                self._blazeface = blazeface.BlazeFace(path, blazeface.LAYOUTS[model], min_score)
        else:
            self._open_mediapipe(path)

    def _open_mediapipe(self, path: Path) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp_image = mp.Image
        self._srgb = mp.ImageFormat.SRGB
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.min_score,
        )
        with _native_stderr_silenced():
            self._detector = vision.FaceDetector.create_from_options(options)
            # LiteRT logs a warning on the first inference ("Input tensor memory is not aligned"),
            # which would reach the user's terminal on their first picture: run that first inference
            # here, on a blank frame, where native stderr is hidden (it also makes the first real
            # detection as fast as the rest).
            self._detector.detect(mp.Image(image_format=self._srgb, data=np.zeros((128, 128, 3), np.uint8)))
        _open_detectors.add(self)

    def detections(self, image: np.ndarray) -> list[blazeface.Detection]:
        """The detector's own output, before filtering, cropping and sorting by size.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
        Returns:
            Detections, best score first (boxes clipped to the image, possibly empty).
        """
        net = self._blazeface  # read once: close() may clear it meanwhile
        if net is not None:
            return net(image)
        if self.engine != "mediapipe":
            raise RuntimeError("FaceDetector is closed")
        height, width = image.shape[:2]
        mp_image = self._mp_image(image_format=self._srgb, data=_aligned(image))
        with self._lock:
            if self._detector is None:
                raise RuntimeError("FaceDetector is closed")
            result = self._detector.detect(mp_image)
        out = []
        for det in result.detections:
            bb = det.bounding_box
            box = (max(0, bb.origin_x), max(0, bb.origin_y),
                   min(width, bb.origin_x + bb.width), min(height, bb.origin_y + bb.height))
            keypoints = np.array([[k.x * width, k.y * height] for k in det.keypoints], np.float32).reshape(-1, 2)
            out.append(blazeface.Detection(float(det.categories[0].score) if det.categories else 0.0, box, keypoints))
        return out

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Detect faces.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (see `fer.io.read_image`).
        Returns:
            Up to ``max_faces`` faces with score >= ``min_score``, largest box first; ``[]`` if none.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        faces = []
        for det in self.detections(image):
            box = det.box
            if det.score < self.min_score or box[2] <= box[0] or box[3] <= box[1]:
                continue
            crop, crop_kp, to_crop = cut_crop(image, det.keypoints, box, self.style, self.crop_size)
            others = {style: cut_crop(image, det.keypoints, box, style, self.crop_size)[0] for style in self.other_styles}
            faces.append(Face(box, det.score, det.keypoints, crop, crop_kp, to_crop, self.style, others))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]

    detect = __call__

    @property
    def closed(self) -> bool:
        """True once `close` has run."""
        return self._blazeface is None and self._detector is None

    def close(self) -> None:
        """Release the native detector (idempotent)."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the detector existed
            return
        with lock:
            self._blazeface = None
            if getattr(self, "_detector", None) is not None:
                with _native_stderr_silenced():
                    self._detector.close()
                self._detector = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if sys is not None and not sys.is_finalizing():
            self.close()
