"""Tracking, smoothing, session confusion and timelines (`fer.tracking`): pure state, no model needed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fer.errors import InputError
from fer.tracking import FaceTracker, LiveSession, SessionConfusion, Timeline, box_iou, match_boxes

LABELS = ("angry", "happy", "neutral", "sad")


def one_hot(i: int, n: int = len(LABELS), p: float = 0.9) -> np.ndarray:
    out = np.full(n, (1 - p) / (n - 1), np.float32)
    out[i] = p
    return out


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_match_boxes_is_one_to_one_and_prefers_overlap() -> None:
    previous = [(0, 0, 100, 100), (200, 0, 300, 100)]
    current = [(205, 5, 305, 105), (3, 2, 103, 102), (500, 500, 550, 550)]
    assert match_boxes(previous, current, 0.3) == [1, 0, None]
    # Two current boxes over the same previous one: only the better overlap gets it.
    assert match_boxes([(0, 0, 100, 100)], [(50, 0, 150, 100), (5, 0, 105, 100)], 0.1) == [None, 0]


def test_tracker_keeps_ids_across_slightly_moved_boxes() -> None:
    tracker = FaceTracker(smoothing=0.0)
    rng = np.random.default_rng(0)
    faces = {"a": np.array([100, 100, 200, 200]), "b": np.array([400, 120, 480, 200])}
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for _ in range(30):
        for name, box in faces.items():
            dx, dy = rng.integers(-8, 9, 2)  # a head moving a little, its box breathing by a few pixels
            faces[name] = box + np.array([dx, dy, dx, dy]) + rng.integers(-2, 3, 4)
        # The detector's order may change between frames (largest first): ids must not.
        order = ["b", "a"] if rng.random() < 0.5 else ["a", "b"]
        tracks = tracker.update([tuple(faces[n]) for n in order], np.stack([one_hot(1), one_hot(2)]))
        for name, track in zip(order, tracks, strict=True):
            seen[name].add(track.id)
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1 and seen["a"] != seen["b"]
    assert len(tracker.tracks) == 2


def test_tracker_new_face_new_id_and_tracks_expire() -> None:
    tracker = FaceTracker(smoothing=0.0, max_missed=2)
    first = tracker.update([(0, 0, 50, 50)], one_hot(1)[None])[0].id
    assert tracker.update([(300, 300, 350, 350)], one_hot(1)[None])[0].id != first
    for _ in range(3):  # face 1 missing for 3 frames > max_missed
        tracker.update([], np.zeros((0, len(LABELS))))
    again = tracker.update([(0, 0, 50, 50)], one_hot(1)[None])[0].id
    assert again not in (first,)
    # A face that comes back within max_missed keeps its id.
    kept = tracker.update([(1, 1, 51, 51)], one_hot(1)[None])[0].id
    tracker.update([], np.zeros((0, len(LABELS))))
    assert tracker.update([(2, 2, 52, 52)], one_hot(1)[None])[0].id == kept


def label_switches(labels: list[int]) -> int:
    return sum(a != b for a, b in itertools.pairwise(labels))


def test_smoothing_reduces_flicker_and_zero_is_raw() -> None:
    rng = np.random.default_rng(1)
    # An ambiguous face: happy just ahead of neutral, frame noise flips the argmax often;
    # then a real change to sad at frame 60.
    frames = []
    for t in range(100):
        p = np.array([0.05, 0.48, 0.42, 0.05]) if t < 60 else np.array([0.05, 0.1, 0.15, 0.7])
        p = np.clip(p + rng.normal(0, 0.06, 4), 0.001, None)
        frames.append((p / p.sum()).astype(np.float32))
    box = (100, 100, 200, 200)
    raw_tracker, smooth_tracker = FaceTracker(smoothing=0.0), FaceTracker(smoothing=0.8)
    raw = [int(raw_tracker.update([box], f[None])[0].probabilities.argmax()) for f in frames]
    smooth = [int(smooth_tracker.update([box], f[None])[0].probabilities.argmax()) for f in frames]
    assert raw == [int(f.argmax()) for f in frames]  # smoothing 0 is the raw answer
    assert label_switches(raw) >= 15
    assert label_switches(smooth) <= label_switches(raw) / 3
    assert smooth[-1] == LABELS.index("sad")  # a real change still comes through
    probs = smooth_tracker.tracks[0].probabilities
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_smoothing_out_of_range_refused() -> None:
    with pytest.raises(InputError, match="smoothing"):
        FaceTracker(smoothing=1.0)
    with pytest.raises(InputError, match="smoothing"):
        FaceTracker().update([(0, 0, 1, 1)], one_hot(0)[None], smoothing=-0.1)


def test_session_confusion_accumulates_and_resets() -> None:
    conf = SessionConfusion(LABELS)
    assert conf.total == 0 and conf.accuracy is None and conf.top_confusions() == []
    for posed, said, n in [("happy", "happy", 8), ("happy", "neutral", 2), ("sad", "neutral", 5), ("sad", "sad", 5)]:
        conf.add(posed, said, n)
    assert conf.total == 20
    assert conf.accuracy == pytest.approx(13 / 20)
    assert conf.top_confusions(2) == [("sad", "neutral", 5), ("happy", "neutral", 2)]
    assert conf.per_class() == {"happy": (10, 0.8), "sad": (10, 0.5)}
    csv_text = conf.to_csv().splitlines()
    assert csv_text[0] == "posed \\ predicted,angry,happy,neutral,sad"
    assert csv_text[2] == "happy,0,8,2,0"
    assert csv_text[4] == "sad,0,0,5,5"
    conf.reset()
    assert conf.total == 0 and conf.accuracy is None
    assert conf.to_csv().splitlines()[2] == "happy,0,0,0,0"
    with pytest.raises(InputError, match="unknown expression 'bored'"):
        conf.add("bored", "happy")


def test_live_sessions_are_isolated() -> None:
    one, two = LiveSession(LABELS), LiveSession(LABELS)
    one.confusion.add("happy", "happy")
    one.observe(0.0, [(0, 0, 10, 10)], one_hot(1)[None])
    assert two.confusion.total == 0 and two.frames == 0 and not two.timelines
    assert one.tracker is not two.tracker and one.confusion is not two.confusion


def test_live_session_timelines_follow_tracks() -> None:
    session = LiveSession(LABELS, timeline_frames=5)
    for i in range(8):
        tracks = session.observe(10.0 + i * 0.1, [(0, 0, 100, 100)], one_hot(1)[None], smoothing=0.0)
    timeline = session.timelines[tracks[0].id]
    assert session.focus == tracks[0].id
    assert len(timeline) == 5  # bounded buffer
    np.testing.assert_allclose(timeline.times, [0.3, 0.4, 0.5, 0.6, 0.7], atol=1e-9)  # seconds since start
    assert timeline.values.shape == (5, len(LABELS))
    # The face leaves: its timeline goes once its track ends.
    for i in range(10):
        session.observe(11.0 + i * 0.1, [], np.zeros((0, len(LABELS))))
    assert session.timelines == {} and session.focus is None


def test_timeline_top_labels() -> None:
    timeline = Timeline(LABELS, max_frames=3)
    assert timeline.top_labels() == [] and timeline.values.shape == (0, 4)
    timeline.push(0.0, [0.1, 0.2, 0.6, 0.1])
    timeline.push(0.1, [0.0, 0.9, 0.05, 0.05])
    assert timeline.top_labels(2) == [1, 2]
    timeline.clear()
    assert len(timeline) == 0
