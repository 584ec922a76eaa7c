"""Face stage: BlazeFace face detection, giving one `Face` record (box, keypoints, crops) per face.

The detector models are MediaPipe's ``.tflite`` files shipped with the package (`fer.weights`,
taken from the mediapipe 0.10.21 wheel; mediapipe 1.x ships no models and has no ``mp.solutions``).
They run on a bare LiteRT interpreter (`fer.blazeface`, the default and the cheaper of the two) or
through MediaPipe's Tasks face detector, which gives the same faces. How crops are cut: `fer.crops`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from fer import blazeface
from fer.crops import DEFAULT_CROP_SIZE, DEFAULT_MARGIN, CropKind, CropStyle, cut_crop
from fer.errors import InputError
from fer.limits import DEFAULT_MAX_FACES, MAX_FACES
from fer.native_logs import native_stderr_silenced
from fer.weights import DETECTORS, registered, resolve_registered

log = logging.getLogger(__name__)

#: Keypoint names in MediaPipe's order (the subject's right eye is on the image's left).
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion",
)

#: Detector models (``FaceDetector(model=...)``) → their `fer.weights.REGISTRY` name.
DETECTOR_MODELS: Mapping[str, str] = DETECTORS

#: What runs a detector model: ``"auto"`` (LiteRT when installed, else MediaPipe), ``"litert"``
#: (`fer.blazeface`) or ``"mediapipe"`` (MediaPipe's Tasks face detector, the reference).
DetectorEngine = Literal["auto", "litert", "mediapipe"]

# mediapipe 1.2.3 prints a traceback when it finalises a detector during module teardown, so open
# ones are closed by this atexit hook. Registered before mediapipe's own (fer.face imports it later),
# it runs after it, when closing is a clean no-op; if mediapipe came first, an unclosable detector is
# parked in `_unclosed`, whose teardown (reverse import order) precedes mediapipe's modules'.
_open_detectors: weakref.WeakSet[FaceDetector] = weakref.WeakSet()
_unclosed: list[Any] = []


@atexit.register
def _close_all() -> None:
    for detector in list(_open_detectors):
        detector.close(at_exit=True)


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
            InputError: no crop in that style was cut (`fer.pipeline.Pipeline.detect` cuts one per network).
        """
        if self.style is None or style == self.style:
            return self.crop
        try:
            return self.other_crops[style]
        except KeyError:
            raise InputError(f"this face has no {style.kind!r} crop with margin {style.margin}: detect it with "
                             "a Pipeline holding a network trained on that crop (Pipeline.detect)") from None

    def with_crops(self, image: np.ndarray, styles: Sequence[CropStyle]) -> Face:
        """This face with its crop in each of ``styles`` too (cut from ``image``, the image it was
        detected in, at the side of `crop`), in `other_crops`; itself when it has them all."""
        missing = [st for st in dict.fromkeys(styles) if st != self.style and st not in self.other_crops]
        if not missing:
            return self
        size = self.crop.shape[0]
        cut = {st: cut_crop(image, self.keypoints, self.box, st, size)[0] for st in missing}
        return dataclasses.replace(self, other_crops={**self.other_crops, **cut})


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
    ) -> None:
        """Args:
            model: a key of `DETECTOR_MODELS`.
            min_score: confidence threshold in [0, 1].
            max_faces: most faces returned, in [1, `fer.limits.MAX_FACES`].
            margin: crop margin per side, as a fraction of the box side, in [0, 1].
            crop_size: side of the square crops, in pixels.
            engine: see `DetectorEngine`; ``"auto"`` picks LiteRT and says in the log why not when
                it cannot.
            crop: how `Face.crop` is cut (`CropKind`), with ``margin``. The detector knows nothing
                of the networks after it: `fer.pipeline.Pipeline.detect` cuts the crops other
                networks were trained on (`Face.other_crops`).
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
        #: How `Face.crop` is cut.
        self.style = CropStyle(crop, margin)
        entry = registered(DETECTOR_MODELS[model])
        path = resolve_registered(entry.name)
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
            with native_stderr_silenced():  # LiteRT announces its XNNPACK delegate on stderr
                self._blazeface = blazeface.BlazeFace(path, blazeface.LAYOUTS[entry.spec], min_score)
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
        with native_stderr_silenced():
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
            faces.append(Face(box, det.score, det.keypoints, crop, crop_kp, to_crop, self.style))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]

    detect = __call__

    @property
    def closed(self) -> bool:
        """True once `close` has run."""
        return self._blazeface is None and self._detector is None

    def close(self, *, at_exit: bool = False) -> None:
        """Release the native detector (idempotent)."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the detector existed
            return
        with lock:
            self._blazeface = None
            if getattr(self, "_detector", None) is not None:
                try:
                    with native_stderr_silenced():
                        self._detector.close()
                except RuntimeError:
                    if not at_exit:
                        raise
                    _unclosed.append(self._detector)  # see _open_detectors
                self._detector = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if sys is not None and not sys.is_finalizing():
            self.close()
