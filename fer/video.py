"""Short video clips: sample frames with OpenCV, follow each face, and summarise its expressions.

    >>> import fer
    >>> from fer.video import analyse_video
    >>> with fer.load() as pipe:
    ...     result = analyse_video(pipe, "clip.mp4", sample_fps=5)
    >>> result.summary()          # one row per face
    >>> result.to_csv()           # one row per face per sampled frame

Limits (`fer.limits`): file size `MAX_VIDEO_BYTES`, length `MAX_VIDEO_SECONDS`, at most
`MAX_VIDEO_FRAMES` frames sampled, and at most `MAX_VIDEO_DECODE_PIXELS` pixels decoded (the
declared size × frame count is checked before decoding, and the decoded pixels are counted while
reading, for containers that do not declare a count or lie about it); a caller may also give a
wall-clock limit. Frames are decoded one at a time and never written anywhere, except into the
annotated copy when a caller asks for one (`AnnotatedClip`, a path the caller chooses).
"""

from __future__ import annotations

import csv
import io
import os
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from fer.errors import InputError, check_deadline
from fer.limits import MAX_PIXELS, MAX_VIDEO_BYTES, MAX_VIDEO_DECODE_PIXELS, MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from fer.tracking import Agreement, Box, FaceTracker, count_opinion

if TYPE_CHECKING:
    from fer.pipeline import Pipeline

#: Frames per second sampled by default: expressions change over a few hundred milliseconds.
DEFAULT_SAMPLE_FPS = 5.0

#: Longest side of the annotated copy's frames, in pixels: small enough to encode in a fraction of
#: the analysis time and to send inline, large enough to read the labels.
ANNOTATED_SIDE = 480
#: MIME type of the annotated copy: VP8 in WebM, which OpenCV's bundled FFmpeg writes and every
#: current browser plays (its 'avc1' H.264 writer has no encoder here, 'mp4v' is not browser-playable).
ANNOTATED_MIME = "video/webm"

#: Frame rate assumed when a container does not record one (rare; some MJPEG/AVI writers).
_FALLBACK_FPS = 25.0
#: Highest frame rate taken at its word: high-speed phone cameras record up to 960 frames/s, while
#: containers that do not know their rate report nonsense such as 90000 (their time base).
_MAX_FPS = 1000.0


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip.

    Attributes:
        fps: frames per second (`_FALLBACK_FPS` when the file does not say).
        frames: frame count, 0 when the container does not say.
        width, height: frame size in pixels.
        bytes: file size.
    """

    path: str
    fps: float
    frames: int
    width: int
    height: int
    bytes: int

    @property
    def duration(self) -> float | None:
        """Length in seconds, or None when the frame count is unknown."""
        return self.frames / self.fps if self.frames > 0 else None


def _open(path: str | os.PathLike) -> tuple[cv2.VideoCapture, str, int]:
    name = str(path)
    try:
        size = Path(path).stat().st_size
    except OSError:
        raise InputError(f"{name}: no such file") from None
    if Path(path).is_dir():
        raise InputError(f"{name}: is a folder, not a video")
    if size == 0:
        raise InputError(f"{name}: the file is empty")
    if size > MAX_VIDEO_BYTES:
        raise InputError(
            f"{name}: video is {size / 2**20:.1f} MB, over the {MAX_VIDEO_BYTES / 2**20:.0f} MB limit"
        )
    if _is_still_image(path):
        # FFmpeg happily opens a PNG or JPEG as a one-frame "video".
        raise InputError(f"{name}: is a still image, not a video (use the Image tab or `fer predict`)")
    capture = cv2.VideoCapture(name)
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{name}: not a video OpenCV can read (try MP4/H.264, WebM or AVI)")
    return capture, name, size


def _is_still_image(path: str | os.PathLike) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # reads the header only
            return not getattr(img, "is_animated", False)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


def probe_video(path: str | os.PathLike, max_decode_pixels: int = MAX_VIDEO_DECODE_PIXELS) -> VideoInfo:
    """Read a clip's header and check it against the limits.

    Raises:
        InputError: missing, empty, too large, unreadable, frames over `MAX_PIXELS`, longer than
            `MAX_VIDEO_SECONDS`, or declaring more than ``max_decode_pixels`` pixels in all.
    """
    capture, name, size = _open(path)
    try:
        return _info(capture, name, size, max_decode_pixels)
    finally:
        capture.release()


def _too_much_decoding(name: str, width: int, height: int, max_decode_pixels: int) -> InputError:
    frames = max_decode_pixels // max(1, width * height)
    return InputError(f"{name}: too much to decode ({width}×{height} frames: at most {frames:,} of them, "
                      f"{max_decode_pixels / 1e9:g} billion pixels in all); send a shorter or smaller clip")


def _info(capture: cv2.VideoCapture, name: str, size: int, max_decode_pixels: int) -> VideoInfo:
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if np.isfinite(fps) and 0 < fps <= _MAX_FPS else _FALLBACK_FPS
    frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    frames = int(frames) if np.isfinite(frames) and frames > 0 else 0
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    info = VideoInfo(name, fps, frames, width, height, size)
    if width * height > MAX_PIXELS:
        raise InputError(f"{name}: frames are {width}×{height}, over the {MAX_PIXELS / 1e6:.0f} MP limit")
    if info.duration is not None and info.duration > MAX_VIDEO_SECONDS + 0.5 / fps:
        raise InputError(
            f"{name}: video is {info.duration:.1f} s long, over the {MAX_VIDEO_SECONDS:.0f} s limit; trim it first"
        )
    if frames * width * height > max_decode_pixels:
        raise _too_much_decoding(name, width, height, max_decode_pixels)
    return info


def sample_frames(
    path: str | os.PathLike,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_frames: int = MAX_VIDEO_FRAMES,
    *,
    max_decode_pixels: int = MAX_VIDEO_DECODE_PIXELS,
    deadline: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode a clip and yield frames at about ``sample_fps``.

    The whole file is read in order, and only sampled frames are converted to RGB (``grab``
    decodes without converting): seeking by frame number is inexact for many codecs. When there
    are more than ``max_frames`` candidates, the rate is lowered so the samples still span the
    whole clip.

    Args:
        path: a video file OpenCV can read.
        sample_fps: wanted samples per second of video (> 0).
        max_frames: most frames yielded (1 … `MAX_VIDEO_FRAMES`).
        max_decode_pixels: most pixels decoded in all (declared before, counted while decoding).
        deadline: a ``time.monotonic()`` instant after which decoding stops with an `InputError`.
    Yields:
        ``(frame_index, time_seconds, frame)`` with ``frame`` ``(H, W, 3)`` uint8 RGB.
    Raises:
        InputError: see `probe_video`; also for a clip with no decodable frame, one that turns out
            longer than `MAX_VIDEO_SECONDS` or over ``max_decode_pixels`` while reading, or past
            ``deadline``.
    """
    if not sample_fps > 0:
        raise InputError(f"sample rate must be above 0 frames per second, got {sample_fps}")
    if not 1 <= max_frames <= MAX_VIDEO_FRAMES:
        raise InputError(f"max_frames must be between 1 and {MAX_VIDEO_FRAMES}, got {max_frames}")
    capture, name, size = _open(path)
    try:
        info = _info(capture, name, size, max_decode_pixels)
        step = 1.0 / sample_fps
        if info.duration is not None and info.duration * sample_fps > max_frames:
            step = info.duration / max_frames
        next_time, yielded, index, decoded = 0.0, 0, -1, 0
        while yielded < max_frames:
            check_deadline(deadline, _clip_timeout(name))
            if not capture.grab():
                break
            index += 1
            # The header's size: a frame of another size still costs about as much to decode.
            decoded += info.width * info.height
            if decoded > max_decode_pixels:
                raise _too_much_decoding(name, info.width, info.height, max_decode_pixels)
            time = index / info.fps
            if time > MAX_VIDEO_SECONDS:
                raise InputError(f"{name}: video is longer than the {MAX_VIDEO_SECONDS:.0f} s limit; trim it first")
            # Half a frame of tolerance, so 5 fps out of 25 fps takes every 5th frame exactly.
            if time + 0.5 / info.fps < next_time:
                continue
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                continue
            if bgr.shape[0] * bgr.shape[1] > MAX_PIXELS:
                raise InputError(f"{name}: a frame is {bgr.shape[1]}×{bgr.shape[0]}, over the "
                                 f"{MAX_PIXELS / 1e6:.0f} MP limit")
            next_time += step
            yielded += 1
            yield index, time, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if yielded == 0:
            raise InputError(f"{name}: no frame could be decoded")
    finally:
        capture.release()


def _clip_timeout(name: str) -> str:
    return (f"{name}: stopped, this clip takes longer to analyse than this server allows; "
            "send a shorter clip or a lower sampling rate")


@dataclass(frozen=True)
class Observation:
    """One face in one sampled frame.

    Attributes:
        frame: frame index in the clip; time: seconds from the start.
        face: track id, stable across frames (1, 2, …).
        box: ``(x0, y0, x1, y1)`` image pixels.
        probabilities: ``(C,)`` float32 smoothed probabilities (raw when smoothing is 0).
    """

    frame: int
    time: float
    face: int
    box: Box
    probabilities: np.ndarray


@dataclass
class VideoAnalysis:
    """Per-face expressions over a clip.

    Attributes:
        info: the clip's header.
        labels: the model's ``C`` labels.
        observations: every face in every sampled frame, in frame order.
        frames_sampled: frames analysed; frames_with_faces: of those, frames with at least one face.
        sample_fps: the sampling rate asked for; smoothing: the smoothing weight used.
        agreement: how often the pipeline's two networks agreed on the faces (raw top-1 per face and
            frame), when a second opinion ran; None otherwise.
    """

    info: VideoInfo
    labels: tuple[str, ...]
    observations: list[Observation] = field(default_factory=list)
    frames_sampled: int = 0
    frames_with_faces: int = 0
    sample_fps: float = DEFAULT_SAMPLE_FPS
    smoothing: float = 0.0
    agreement: Agreement | None = None

    @property
    def faces(self) -> list[int]:
        """Track ids, most frequently seen first."""
        counts: dict[int, int] = {}
        for obs in self.observations:
            counts[obs.face] = counts.get(obs.face, 0) + 1
        return sorted(counts, key=lambda f: (-counts[f], f))

    def series(self, face: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times (T,) float64 seconds, probabilities (T, C) float32)`` of one face."""
        rows = [o for o in self.observations if o.face == face]
        times = np.array([o.time for o in rows], np.float64)
        values = np.stack([o.probabilities for o in rows]) if rows else np.zeros((0, len(self.labels)), np.float32)
        return times, values

    def summary(self) -> list[dict[str, Any]]:
        """One row per face, most frequently seen first: ``face``, ``frames``, ``first_s``,
        ``last_s``, ``top_expression`` (most frequent top-1), ``share`` (its fraction of the face's
        frames), ``mean_probability`` (its mean probability)."""
        rows = []
        for face in self.faces:
            times, values = self.series(face)
            top = values.argmax(axis=1)
            counts = np.bincount(top, minlength=len(self.labels))
            best = int(counts.argmax())
            rows.append({
                "face": face,
                "frames": int(len(times)),
                "first_s": round(float(times[0]), 2),
                "last_s": round(float(times[-1]), 2),
                "top_expression": self.labels[best],
                "share": round(float(counts[best] / len(times)), 3),
                "mean_probability": round(float(values[:, best].mean()), 3),
            })
        return rows

    def to_csv(self) -> str:
        """CSV, one row per face per sampled frame: frame, time_s, face, x0, y0, x1, y1, top, then
        one probability column per label."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["frame", "time_s", "face", "x0", "y0", "x1", "y1", "top", *self.labels])
        for obs in self.observations:
            top = self.labels[int(np.argmax(obs.probabilities))]
            writer.writerow([obs.frame, f"{obs.time:.3f}", obs.face, *obs.box, top,
                             *(f"{p:.4f}" for p in obs.probabilities)])
        return buffer.getvalue()


class AnnotatedClip:
    """Writes the sampled frames, each face boxed and labelled "#id expression p%", as a VP8 WebM
    at the sampling rate (`ANNOTATED_MIME`), frames scaled to at most `ANNOTATED_SIDE` pixels.

    Args:
        path: the file to write (the caller's; a ``.webm`` name).
        fps: frames per second of the copy (the rate the frames were sampled at).
        labels: the model's labels, for the probability columns of each observation.
    """

    def __init__(self, path: str | os.PathLike, fps: float, labels: tuple[str, ...]) -> None:
        self.path, self.fps, self.labels = str(path), max(fps, 0.5), labels
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        self.frames = 0

    def add(self, frame: np.ndarray, observations: list[Observation]) -> None:
        """Draw ``observations`` on ``frame`` (``(H, W, 3)`` uint8 RGB) and append it.

        Raises:
            InputError: the encoder could not be opened.
        """
        from fer.viz import draw_boxes

        height, width = frame.shape[:2]
        if self._writer is None:
            scale = min(1.0, ANNOTATED_SIDE / max(height, width))
            # VP8 wants even sides.
            self._size = (max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2))
            self._writer = cv2.VideoWriter(self.path, cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"VP80"),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise InputError("the annotated copy could not be encoded (no VP8 encoder in OpenCV)")
        sx, sy = self._size[0] / width, self._size[1] / height
        small = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        faces = []
        for obs in observations:
            best = int(np.argmax(obs.probabilities))
            x0, y0, x1, y1 = obs.box
            faces.append(((round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)), self.labels[best],
                          f"#{obs.face} {self.labels[best]} {obs.probabilities[best]:.0%}"))
        self._writer.write(cv2.cvtColor(draw_boxes(small, faces), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file (safe to call twice)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def analyse_video(
    pipeline: Pipeline,
    path: str | os.PathLike,
    *,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_frames: int = MAX_VIDEO_FRAMES,
    smoothing: float = 0.0,
    progress: Callable[[float, str], None] | None = None,
    time_limit_s: float | None = None,
    annotated: str | os.PathLike | None = None,
) -> VideoAnalysis:
    """Run the pipeline on sampled frames of a clip, following faces by box overlap.

    Args:
        pipeline: a loaded `fer.Pipeline` (Grad-CAM is not computed here).
        path: the clip.
        sample_fps: samples per second of video (lowered to fit ``max_frames``).
        max_frames: most frames analysed.
        smoothing: weight of the past in each face's exponential moving average (0 = raw).
        progress: called as ``progress(fraction in [0, 1], message)`` after each frame.
        time_limit_s: wall-clock seconds the whole analysis may take (None: no limit).
        annotated: where to write the annotated copy (`AnnotatedClip`, a ``.webm`` path), or None.
    Returns:
        `VideoAnalysis`.
    Raises:
        InputError: the clip is refused (see `sample_frames`); `fer.errors.JobTimeout` past ``time_limit_s``.
    """
    deadline = None if time_limit_s is None else clock.monotonic() + time_limit_s
    info = probe_video(path)
    expected = max_frames
    if info.duration is not None:
        last = (info.frames - 1) / info.fps
        expected = max(1, min(max_frames, int(last * sample_fps + 1e-6) + 1))
    tracker = FaceTracker(smoothing=smoothing, max_missed=max(2, round(sample_fps)))
    result = VideoAnalysis(info, pipeline.labels, sample_fps=sample_fps, smoothing=smoothing)
    copy = None
    if annotated is not None:
        # The copy plays at the rate frames were really sampled (lowered for long clips).
        rate = sample_fps if info.duration is None else min(sample_fps, max_frames / max(info.duration, 1e-6))
        copy = AnnotatedClip(annotated, rate, result.labels)
    try:
        _analyse_frames(pipeline, path, result, tracker, copy, expected, max_frames, deadline, progress)
    finally:
        if copy is not None:
            copy.close()
    if progress is not None:
        progress(1.0, f"{result.frames_sampled} frames analysed")
    return result


def _analyse_frames(pipeline: Pipeline, path: str | os.PathLike, result: VideoAnalysis, tracker: FaceTracker,
                    copy: AnnotatedClip | None, expected: int, max_frames: int, deadline: float | None,
                    progress: Callable[[float, str], None] | None) -> None:
    sample_fps = result.sample_fps
    for index, time, frame in sample_frames(path, sample_fps, max_frames, deadline=deadline):
        check_deadline(deadline, _clip_timeout(str(path)))
        predictions = pipeline.predict_faces(pipeline.detect(frame), attention=False)
        for pred in predictions:
            result.agreement = count_opinion(result.agreement, pred, pipeline.main.spec.name)
        boxes = [p.box for p in predictions]
        probs = np.stack([p.probabilities for p in predictions]) if predictions else np.zeros((0, len(result.labels)))
        seen = [Observation(index, time, track.id, track.box, track.probabilities.copy())
                for track in tracker.update(boxes, probs)]
        result.observations.extend(seen)
        if copy is not None:
            copy.add(frame, seen)
        result.frames_sampled += 1
        result.frames_with_faces += bool(predictions)
        if progress is not None:
            progress(min(1.0, result.frames_sampled / expected), f"frame {result.frames_sampled} ({time:.1f} s)")
