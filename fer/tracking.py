"""State that lives across the frames of one stream: face tracks, smoothed probabilities, the
session's posed-versus-said counts, how often two networks agree, and a short timeline of
probabilities.

Everything here is per session (one webcam stream or one video) and holds no image data: boxes,
probabilities and counts only. Nothing in this module imports gradio.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer import metrics
from fer.errors import InputError

Box = tuple[int, int, int, int]

#: Default weight of the past in the exponential smoothing of probabilities (0 = off).
DEFAULT_SMOOTHING = 0.6
#: Largest accepted smoothing weight: above it a label would take many seconds to follow a new expression.
MAX_SMOOTHING = 0.95


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes, in [0, 1]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(previous: Sequence[Box], current: Sequence[Box], threshold: float) -> list[int | None]:
    """Pair each current box with at most one previous box, greedily by decreasing IoU.

    Greedy matching is what SORT-style trackers do without a motion model; with a handful of faces
    it gives the same pairs as the Hungarian algorithm in all but contrived layouts.

    Returns:
        For each box of ``current``, the index of its previous box, or None (a new face).
    """
    pairs = sorted(
        ((box_iou(p, c), i, j) for i, p in enumerate(previous) for j, c in enumerate(current)),
        reverse=True,
    )
    matched: list[int | None] = [None] * len(current)
    used: set[int] = set()
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i in used or matched[j] is not None:
            continue
        matched[j] = i
        used.add(i)
    return matched


@dataclass
class Track:
    """One face followed across frames.

    Attributes:
        id: stable number, 1, 2, … in order of appearance within the tracker.
        box: ``(x0, y0, x1, y1)`` last seen box, image pixels.
        probabilities: ``(C,)`` float32 smoothed probabilities, sums to 1.
        missed: consecutive frames in which the face was not found.
        frames: frames in which it was found.
    """

    id: int
    box: Box
    probabilities: np.ndarray
    missed: int = 0
    frames: int = 1


class FaceTracker:
    """Keeps face identities across frames by box overlap and smooths each face's probabilities.

    Smoothing is an exponential moving average per track,
    ``p_smooth = smoothing * p_smooth_prev + (1 - smoothing) * p_now``; 0 turns it off (still images).

    Args:
        iou_threshold: least IoU between a face's previous and current box to call it the same face.
        max_missed: frames a face may go undetected (a blink, a turned head) before its track ends.
        smoothing: weight of the past in [0, `MAX_SMOOTHING`].
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, smoothing: float = DEFAULT_SMOOTHING) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise InputError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.smoothing = check_smoothing(smoothing)
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(
        self, boxes: Sequence[Box], probabilities: np.ndarray, smoothing: float | None = None
    ) -> list[Track]:
        """Feed one frame's detections.

        Args:
            boxes: ``N`` face boxes ``(x0, y0, x1, y1)`` of this frame.
            probabilities: ``(N, C)`` float probabilities of those faces.
            smoothing: override the tracker's smoothing for this frame.
        Returns:
            ``N`` tracks aligned with ``boxes``, carrying smoothed probabilities.
        """
        alpha = self.smoothing if smoothing is None else check_smoothing(smoothing)
        probabilities = np.asarray(probabilities, np.float32)
        if probabilities.ndim == 1 and len(boxes) == 1:
            probabilities = probabilities[None]
        if len(probabilities) != len(boxes):
            raise InputError(f"{len(boxes)} boxes but {len(probabilities)} probability rows")
        matched = match_boxes([t.box for t in self.tracks], boxes, self.iou_threshold)
        current: list[Track] = []
        for j, (raw_box, probs) in enumerate(zip(boxes, probabilities, strict=True)):
            x0, y0, x1, y1 = (int(v) for v in raw_box)
            box = (x0, y0, x1, y1)
            i = matched[j]
            if i is None or self.tracks[i].probabilities.shape != probs.shape:
                track = Track(self._next_id, box, probs.copy())
                self._next_id += 1
            else:
                track = self.tracks[i]
                smoothed = alpha * track.probabilities + (1.0 - alpha) * probs
                track.probabilities = (smoothed / max(float(smoothed.sum()), 1e-12)).astype(np.float32)
                track.box, track.missed, track.frames = box, 0, track.frames + 1
            current.append(track)
        seen = {id(t) for t in current}
        kept = []
        for track in self.tracks:
            if id(track) not in seen:
                track.missed += 1
                if track.missed <= self.max_missed:
                    kept.append(track)
        self.tracks = current + kept
        return current

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        self.tracks = []
        self._next_id = 1


def check_smoothing(value: float) -> float:
    """``value`` as a float if it is a valid smoothing weight, else `InputError`."""
    value = float(value)
    if not 0.0 <= value <= MAX_SMOOTHING:
        raise InputError(f"smoothing must be between 0 and {MAX_SMOOTHING}, got {value}")
    return value


class LabelPairs:
    """Counts of ``(row label, column label)`` pairs over one label set: a confusion matrix as it
    fills up, frame by frame. Rates and the most frequent off-diagonal pairs come from `fer.metrics`.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        if not labels:
            raise InputError(f"{type(self).__name__} needs at least one label")
        self.labels: tuple[str, ...] = tuple(labels)
        self.counts = np.zeros((len(self.labels), len(self.labels)), np.int64)

    def add(self, row: str, column: str, count: int = 1) -> None:
        """Count ``count`` times the pair ``(row, column)``."""
        try:
            self.counts[self.labels.index(row), self.labels.index(column)] += count
        except ValueError:
            raise InputError(
                f"unknown expression {row if row not in self.labels else column!r}; "
                f"the model knows {', '.join(self.labels)}"
            ) from None

    def reset(self) -> None:
        """Set every count back to 0."""
        self.counts[:] = 0

    @property
    def total(self) -> int:
        """Pairs counted."""
        return int(self.counts.sum())

    @property
    def accuracy(self) -> float | None:
        """Fraction of pairs on the diagonal (the two labels equal), in [0, 1]; None before any."""
        return metrics.accuracy(self.counts) if self.total else None

    def top_pairs(self, k: int = 3) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent ``(row label, column label, count)`` off the diagonal."""
        return [(c.true, c.predicted, c.count) for c in metrics.top_confusions(self.counts, self.labels, k)]


class SessionConfusion(LabelPairs):
    """Posed-versus-predicted counts gathered while a user poses expressions in front of the camera.

    Rows are the expression the user says they are posing, columns what the model predicted, in the
    order of ``labels``. This measures the model on one person in one room; it is no benchmark.
    """

    def per_class(self) -> dict[str, tuple[int, float]]:
        """Posed label → ``(frames, fraction predicted right)`` for labels posed at least once,
        in label order."""
        frames, right = metrics.support(self.counts), metrics.recall(self.counts)
        return {label: (int(n), float(r)) for label, n, r in zip(self.labels, frames, right, strict=True) if n}

    def top_confusions(self, k: int = 3) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent mistakes as ``(posed, predicted, frames)``, most frequent first."""
        return self.top_pairs(k)

    def to_csv(self) -> str:
        """The matrix as CSV: header ``posed \\ predicted, <labels…>``, one row per posed label."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["posed \\ predicted", *self.labels])
        for label, row in zip(self.labels, self.counts, strict=True):
            writer.writerow([label, *(int(v) for v in row)])
        return buffer.getvalue()


@dataclass
class Timeline:
    """The last ``max_frames`` probability vectors of one face, with their times.

    Attributes:
        labels: the ``C`` labels.
        max_frames: length of the buffer; older frames drop out.
    """

    labels: tuple[str, ...]
    max_frames: int = 100
    _times: deque[float] = field(init=False, repr=False)
    _values: deque[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._times = deque(maxlen=self.max_frames)
        self._values = deque(maxlen=self.max_frames)

    def push(self, time: float, probabilities: np.ndarray) -> None:
        """Append one frame: ``time`` in seconds, ``(C,)`` probabilities."""
        self._times.append(float(time))
        self._values.append(np.asarray(probabilities, np.float32).copy())

    def __len__(self) -> int:
        return len(self._times)

    @property
    def times(self) -> np.ndarray:
        """``(T,)`` float64 seconds, oldest first."""
        return np.array(self._times, np.float64)

    @property
    def values(self) -> np.ndarray:
        """``(T, C)`` float32 probabilities, oldest first (``(0, C)`` when empty)."""
        if not self._values:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.stack(self._values)

    def top_labels(self, k: int = 3) -> list[int]:
        """Indices of the ``k`` labels with the highest peak probability in the buffer."""
        values = self.values
        if not len(values):
            return []
        return [int(i) for i in np.argsort(-values.max(axis=0), kind="stable")[:k]]

    def clear(self) -> None:
        """Drop every frame."""
        self._times.clear()
        self._values.clear()


@dataclass
class LiveSession:
    """Everything one webcam session remembers between frames (kept in the app's per-user state).

    Attributes:
        labels: the model's labels the session's counts refer to.
        tracker: face tracks and smoothed probabilities.
        confusion: posed-versus-predicted counts.
        timelines: track id → recent probabilities of that face.
        focus: track id of the face the views follow (the largest face), or None.
        frames: frames processed.
        started: time of the first frame (seconds, the caller's clock).
        agreement: how two networks answered the followed face, frame by frame (`Agreement`), when
            a second opinion runs; None otherwise.
    """

    labels: tuple[str, ...]
    timeline_frames: int = 100
    tracker: FaceTracker = field(default_factory=FaceTracker)
    confusion: SessionConfusion = field(init=False)
    timelines: dict[int, Timeline] = field(default_factory=dict)
    focus: int | None = None
    frames: int = 0
    started: float | None = None
    agreement: Agreement | None = None

    def __post_init__(self) -> None:
        self.confusion = SessionConfusion(self.labels)

    def observe(self, now: float, boxes: Sequence[Box], probabilities: np.ndarray,
                smoothing: float | None = None) -> list[Track]:
        """Track this frame's faces, record the timelines and return the tracks (aligned with ``boxes``).

        The focus is the first box's track (the detector lists the largest face first).
        """
        if self.started is None:
            self.started = now
        self.frames += 1
        tracks = self.tracker.update(boxes, probabilities, smoothing)
        for track in tracks:
            timeline = self.timelines.setdefault(track.id, Timeline(self.labels, self.timeline_frames))
            timeline.push(now - self.started, track.probabilities)
        alive = {t.id for t in self.tracker.tracks}
        for track_id in [i for i in self.timelines if i not in alive]:
            del self.timelines[track_id]
        self.focus = tracks[0].id if tracks else None
        return tracks


class Agreement(LabelPairs):
    """How often two networks gave the same top-1 on the same faces: rows are ``first``'s label,
    columns ``second``'s, over the labels they share; the agreement rate is the diagonal's share."""

    def __init__(self, first: str, second: str, labels: Sequence[str]) -> None:
        super().__init__(labels)
        self.first, self.second = first, second

    @property
    def rate(self) -> float | None:
        """Fraction of faces where the two agreed, in [0, 1]; None before any."""
        return self.accuracy

    def disagreements(self, k: int = 3) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent ``(first's label, second's label, faces)`` where they differed."""
        return self.top_pairs(k)


def opinion_pair(networks: Sequence[str], main: str) -> tuple[str, str] | None:
    """``(first, second)``: the two networks to compare on a face, from those that ran on it (the
    keys of `fer.pipeline.Prediction.members`): the main one and the other (for an ensemble, its
    two members); None when fewer than two ran."""
    names = list(networks)
    if len(names) < 2:
        return None
    first = main if main in names else names[0]
    return first, next(n for n in names if n != first)


def count_opinion(agreement: Agreement | None, pred: Any, main: str) -> Agreement | None:
    """Add one face (a `fer.pipeline.Prediction`) to ``agreement``, starting a new count when the
    pair of networks or the labels changed; None when no second network ran on it."""
    pair = opinion_pair(list(pred.members), main)
    if pair is None:
        return agreement
    if agreement is None or (agreement.first, agreement.second) != pair or agreement.labels != pred.labels:
        agreement = Agreement(*pair, pred.labels)
    agreement.add(pred.member_top1(pair[0])[0], pred.member_top1(pair[1])[0])
    return agreement
