"""Face crops of dataset samples, once per image: `prepare_crops` detects the largest face and caches
the result on disk keyed by the file's SHA-256 (`FaceCache`, in ``fer.cache.cache_dir("crops")``), so
later epochs and runs skip detection; with ``FER_CACHE_DIR=off`` nothing is written. Images that are face crops already (FER2013, or ``assume_cropped=True``) skip detection;
their keypoints, which the face-prior saliency map needs, are then the fixed estimate
`ASSUMED_CROP_KEYPOINTS`. Unreadable or face-less images never stop a run: they come back as
`Skipped` records.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from fer.errors import InputError
from fer.research.datasets import Sample, Skipped

if TYPE_CHECKING:
    from fer.face import CropKind, Face, FaceDetector
    from fer.pipeline import Pipeline
    from fer.saliency import SaliencyPredictor

#: Where `assume_cropped` images have their keypoints, as fractions of the crop side, in
#: `fer.face.KEYPOINT_NAMES` order. Measured on `FaceDetector`'s default crop (margin 0.2) of
#: assets/astronaut.png and made left-right symmetric: a frontal face cut the way the detector
#: cuts it. An estimate for crops made elsewhere (FER2013's are a little tighter); the face-prior
#: saliency map built from it is smooth enough that a few pixels do not matter.
ASSUMED_CROP_KEYPOINTS = np.array(
    [[0.33, 0.33], [0.67, 0.33], [0.50, 0.49], [0.50, 0.65], [0.145, 0.43], [0.855, 0.43]], np.float32
)

@dataclass(frozen=True)
class Crops:
    """Face crops of some samples, ready for saliency and the CNN.

    Attributes:
        images: ``(N, S, S, 3)`` uint8 RGB crops.
        keypoints: ``(N, 6, 2)`` float32 keypoints in crop pixels (`fer.face.KEYPOINT_NAMES` order).
        samples: the ``N`` samples the crops belong to (those that yielded a face).
        skipped: samples that did not, with the reason.
    """

    images: np.ndarray
    keypoints: np.ndarray
    samples: tuple[Sample, ...]
    skipped: tuple[Skipped, ...]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[str]:
        """The ``N`` samples' labels."""
        return [s.label for s in self.samples]

    def subset(self, indices: Sequence[int] | np.ndarray) -> Crops:
        """Rows ``indices`` of these crops (``skipped`` kept as is)."""
        idx = np.asarray(indices, np.int64)
        return Crops(self.images[idx], self.keypoints[idx], tuple(self.samples[i] for i in idx), self.skipped)


def crop_size_for(samples: Sequence[Sample], input_size: int) -> int:
    """Side at which to hold the crops of ``samples`` in memory for a network of ``input_size``.

    Normally ``input_size``; for CSV datasets of small images (FER2013's 48x48) their own side when
    smaller, since upsampling them first would only multiply memory (35,887 FER2013 faces take 0.25 GB
    at 48 px, 5.4 GB at 224 px); `fer.models.preprocess` resizes each batch to ``input_size``.
    """
    sides = {max(s.pixels.shape) for s in samples if s.pixels is not None}
    if sides and len(sides) == 1 and all(s.pixels is not None for s in samples):
        return min(input_size, sides.pop())
    return input_size


def square_crop(image: np.ndarray, crop_size: int) -> np.ndarray:
    """Centre square of an image that already is a face crop, resized to ``crop_size``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
    Returns:
        ``(crop_size, crop_size, 3)`` uint8 RGB.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    square = image[y0:y0 + side, x0:x0 + side]
    if side == crop_size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > crop_size else cv2.INTER_LINEAR
    return cv2.resize(square, (crop_size, crop_size), interpolation=interp)


class FaceCache:
    """Detect and crop the largest face of an image file once; later calls read the result from disk.

    Entries live in ``cache_dir`` (default: ``fer.cache.cache_dir("crops")``, read when the cache is
    made; None there, ``FER_CACHE_DIR=off``, means every image is detected and nothing is written)
    as ``.npz`` files (plain arrays, read with ``allow_pickle=False``) keyed by the SHA-256 of the
    image file's bytes and the crop settings, so a renamed or copied file hits the cache and an
    edited one does not. "No face" is cached too.
    """

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        *,
        crop_size: int = 224,
        margin: float | None = None,
        detector: Literal["short", "full"] = "short",
        min_score: float = 0.5,
        crop_kind: CropKind = "aligned",
    ) -> None:
        from fer.cache import cache_dir as default_cache_dir
        from fer.face import DEFAULT_MARGIN

        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir("crops")
        self.crop_size = int(crop_size)
        self.margin = DEFAULT_MARGIN if margin is None else float(margin)
        self.detector_name = detector
        self.min_score = float(min_score)
        self._detector: FaceDetector | None = None
        self.crop_kind = crop_kind
        # Aligned crops keep the key they had before crop kinds existed: caches stay valid.
        settings = f"{detector}|{self.min_score}|{self.margin}|{self.crop_size}"
        settings += "" if crop_kind == "aligned" else f"|{crop_kind}"
        self._settings = hashlib.sha256(settings.encode()).hexdigest()[:12]

    def _entry(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / digest[:2] / f"{digest}-{self._settings}.npz"

    def get(self, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
        """Crop of the largest face in ``path``.

        Returns:
            ``(crop (S, S, 3) uint8 RGB, crop_keypoints (6, 2) float32)``.
        Raises:
            InputError: unreadable image, or no face found.
        """
        from fer.io import read_image

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
        entry = self._entry(hashlib.sha256(data).hexdigest())
        cached = _read_entry(entry)
        if "crop" in cached and "keypoints" in cached:
            return cached["crop"], cached["keypoints"]
        image = read_image(data)  # raises InputError for unreadable files; not cached (cheap to retry)
        if self._detector is None:
            from fer.face import FaceDetector

            self._detector = FaceDetector(self.detector_name, min_score=self.min_score, max_faces=1,
                                          margin=self.margin, crop_size=self.crop_size, crop=self.crop_kind)
        faces = self._detector(image)
        if not faces:
            _store(entry, reason=np.array("no face found"))
            raise InputError("no face found")
        crop, keypoints = faces[0].crop, faces[0].crop_keypoints.astype(np.float32)
        _store(entry, crop=crop, keypoints=keypoints)
        return crop, keypoints

    def close(self) -> None:
        """Release the face detector (if one was started)."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def __enter__(self) -> FaceCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_entry(entry: Path | None) -> dict[str, np.ndarray]:
    """A cache entry's arrays ({} when there is none or it is damaged: recomputed then).

    Raises:
        InputError: the entry records that the image has no face (its reason).
    """
    if entry is None or not entry.is_file():
        return {}
    try:
        with np.load(entry, allow_pickle=False) as stored:
            cached = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, KeyError):
        return {}
    if "reason" in cached:
        raise InputError(str(cached["reason"]))
    return cached


def _store(entry: Path | None, **arrays: np.ndarray) -> None:
    """Write one cache entry (nothing when caching is off)."""
    if entry is None:
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, allow_pickle=False, **arrays)
    os.replace(tmp, entry)  # atomic: parallel runs never read half a file


def prepare_crops(
    samples: Sequence[Sample],
    *,
    crop_size: int,
    assume_cropped: bool = False,
    margin: float | None = None,
    cache_dir: str | Path | None = None,
    detector: Literal["short", "full"] = "short",
    progress: bool = True,
    description: str = "faces",
    crop_kind: CropKind = "aligned",
) -> Crops:
    """Face crops of ``samples``: detected and cached, or taken as they are when already crops.

    Samples carrying ``pixels`` (FER2013) and all samples when ``assume_cropped`` is set are used as
    face crops: centre square, resized to ``crop_size``, keypoints `ASSUMED_CROP_KEYPOINTS`. Others go
    through `FaceCache` (largest face, ``margin`` around the detector's box, cut as ``crop_kind`` says:
    `fer.face.CropKind`).

    Returns:
        `Crops` with ``S = crop_size``; unreadable and face-less images are in ``skipped``.
    """
    from tqdm.auto import tqdm

    from fer.io import read_image

    assumed = ASSUMED_CROP_KEYPOINTS * crop_size
    images, keypoints, kept, skipped = [], [], [], []
    with FaceCache(cache_dir, crop_size=crop_size, margin=margin, detector=detector, crop_kind=crop_kind) as cache:
        for sample in tqdm(samples, desc=description, unit="img", disable=not progress, leave=False):
            try:
                if sample.pixels is not None:
                    crop, kp = square_crop(read_image(sample.pixels), crop_size), assumed
                elif assume_cropped:
                    crop, kp = square_crop(read_image(sample.source), crop_size), assumed
                else:
                    crop, kp = cache.get(sample.path)
            except InputError as exc:
                # read_image starts its message with the source's name; the record names the file already.
                reason = re.sub(r"^(<[^>]*>|" + re.escape(str(sample.path)) + "): ", "", str(exc))
                skipped.append(Skipped(sample.key, reason))
                continue
            images.append(crop)
            keypoints.append(kp)
            kept.append(sample)
    if images:
        image_array = np.stack(images)
        keypoint_array = np.stack(keypoints).astype(np.float32)
    else:
        image_array = np.zeros((0, crop_size, crop_size, 3), np.uint8)
        keypoint_array = np.zeros((0, 6, 2), np.float32)
    return Crops(image_array, keypoint_array, tuple(kept), tuple(skipped))


def largest_faces(
    samples: Sequence[Sample],
    pipe: Pipeline,
    *,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    progress: bool = False,
    description: str = "faces",
    deadline: float | None = None,
) -> tuple[list[Face], tuple[Sample, ...], tuple[Skipped, ...]]:
    """The largest face of each sample's image as ``pipe.detect`` finds and cuts it (what
    ``pipe(image)`` answers first), cached like `FaceCache` under a key of the file's SHA-256 and
    every setting that changes the face (detector model, engine, threshold, the networks' crop
    styles and size).

    ``cache`` False keeps nothing on disk (the app's uploads). Past ``deadline`` (a
    ``time.monotonic()`` instant) it stops with `fer.errors.JobTimeout`.

    Returns:
        ``(faces, kept, skipped)``: one `fer.face.Face` per kept sample (with every network's crop,
        `Face.crop_in`), and the samples that were unreadable or had no face, with the reason.
    """
    from tqdm.auto import tqdm

    from fer.cache import cache_dir as default_cache_dir
    from fer.errors import check_deadline
    from fer.face import Face
    from fer.io import read_image

    folder = None if not cache else Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir("crops")
    detector = pipe.detector
    others = tuple(dict.fromkeys(st for st in pipe.styles.values() if st != detector.style))
    settings = (f"face|{detector.model}|{detector.engine}|{float(detector.min_score)}|{detector.crop_size}|"
                f"{detector.style}|{others}")
    tag = hashlib.sha256(settings.encode()).hexdigest()[:12]
    faces: list[Face] = []
    kept: list[Sample] = []
    skipped: list[Skipped] = []
    for sample in tqdm(samples, desc=description, unit="img", disable=not progress, leave=False):
        check_deadline(deadline)
        try:
            source = sample.source
            data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
            digest = hashlib.sha256(data.tobytes() if isinstance(data, np.ndarray) else data).hexdigest()
            entry = None if folder is None else folder / digest[:2] / f"{digest}-{tag}.npz"
            cached = _read_entry(entry)
            if "crop" not in cached:
                found = pipe.detect(read_image(data))
                if not found:
                    _store(entry, reason=np.array("no face found"))
                    raise InputError("no face found")
                face = found[0]
                cached = {"box": np.array(face.box, np.int64), "score": np.array(face.score, np.float64),
                          "keypoints": face.keypoints, "crop": face.crop, "crop_keypoints": face.crop_keypoints,
                          "to_crop": face.to_crop, **{f"other{i}": face.crop_in(st) for i, st in enumerate(others)}}
                _store(entry, **cached)
        except OSError as exc:
            skipped.append(Skipped(sample.key, f"cannot read file ({exc.strerror or exc})"))
            continue
        except InputError as exc:
            skipped.append(Skipped(sample.key, re.sub(r"^(<[^>]*>|" + re.escape(str(sample.path)) + "): ", "", str(exc))))
            continue
        box = tuple(int(v) for v in cached["box"])
        faces.append(Face(box, float(cached["score"]), cached["keypoints"], cached["crop"],  # type: ignore[arg-type]
                          cached["crop_keypoints"], cached["to_crop"], detector.style,
                          {st: cached[f"other{i}"] for i, st in enumerate(others)}))
        kept.append(sample)
    return faces, tuple(kept), tuple(skipped)


def weighted_crops(crops: Crops, predictor: SaliencyPredictor | None, floor: float, *, batch_size: int = 64,
                   progress: bool = False, description: str = "saliency") -> np.ndarray:
    """What a saliency-trained CNN sees: every crop multiplied by its saliency map with ``floor``
    (`fer.saliency.weight_by_saliency`), computed once per crop.

    Args:
        predictor: a `fer.saliency` predictor (crops, keypoints → ``(N, S, S)`` maps in [0, 1]), or
            None for plain crops.
    Returns:
        ``(N, S, S, 3)`` uint8 RGB (``crops.images`` itself when there is no predictor).
    """
    if predictor is None or len(crops) == 0:
        return crops.images
    from fer.saliency import weight_by_saliency

    return weight_by_saliency(crops.images, crops.keypoints, predictor, floor, batch_size=batch_size,
                              progress=progress, description=description)
