"""Video sampling and per-face summaries (`fer.video`) on clips written inside the tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import fer.video
from fer.errors import InputError, JobTimeout
from fer.video import analyse_video, probe_video, sample_frames

FPS = 10


def write_clip(path: Path, image: np.ndarray, seconds: float, fps: int = FPS, drift: int = 2) -> Path:
    """An MJPG AVI of ``image`` (RGB) sliding ``drift`` pixels right per frame, on a grey canvas."""
    height, width = image.shape[:2]
    canvas_w = width + int(seconds * fps) * drift + 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (canvas_w, height))
    assert writer.isOpened()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for i in range(int(round(seconds * fps))):
        frame = np.full((height, canvas_w, 3), 128, np.uint8)
        frame[:, i * drift:i * drift + width] = bgr
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def small_face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut at 256×256: enough for the detector, quick to encode and decode."""
    return cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, small_face: np.ndarray) -> Path:
    return write_clip(tmp_path_factory.mktemp("video") / "astronaut.avi", small_face, seconds=2.0)


def test_probe_reads_header(clip: Path) -> None:
    info = probe_video(clip)
    assert info.fps == pytest.approx(FPS)
    assert info.frames == 2 * FPS
    assert info.duration == pytest.approx(2.0)
    assert info.height == 256


def test_sample_frames_rate_and_cap(clip: Path) -> None:
    frames = list(sample_frames(clip, sample_fps=5))
    assert [i for i, _, _ in frames] == list(range(0, 20, 2))
    assert [round(t, 2) for _, t, _ in frames] == [round(0.2 * k, 2) for k in range(10)]
    index, time, frame = frames[0]
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[0] == 256
    # Capped: 4 frames spread over the whole clip, not the first 4.
    capped = [i for i, _, _ in sample_frames(clip, sample_fps=10, max_frames=4)]
    assert len(capped) == 4 and capped[0] == 0 and capped[-1] >= 14


def test_analyse_video_follows_one_smiling_face(clip: Path, pipeline) -> None:
    progress: list[float] = []
    result = analyse_video(pipeline, clip, sample_fps=5, smoothing=0.5, progress=lambda f, m: progress.append(f))
    assert result.frames_sampled == 10 and result.frames_with_faces == 10
    assert result.faces == [1]  # the drifting face keeps its id
    assert progress[-1] == pytest.approx(1.0) and progress == sorted(progress)
    (row,) = result.summary()
    assert row["face"] == 1 and row["frames"] == 10 and row["top_expression"] == "happy"
    assert row["first_s"] == 0.0 and row["last_s"] == pytest.approx(1.8)
    times, values = result.series(1)
    assert values.shape == (10, len(pipeline.labels))
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-5)
    lines = result.to_csv().splitlines()
    assert lines[0].split(",")[:8] == ["frame", "time_s", "face", "x0", "y0", "x1", "y1", "top"]
    assert lines[0].split(",")[8:] == list(pipeline.labels)
    assert len(lines) == 11 and lines[1].split(",")[7] == "happy"


def test_the_annotated_copy_has_every_sampled_frame_boxed_in_its_labels_colour(clip: Path, tmp_path: Path,
                                                                                pipeline) -> None:
    """A VP8 WebM of the sampled frames at the sampling rate, each face boxed in its label's colour."""
    from fer.viz import LABEL_COLOURS

    copy = tmp_path / "annotated.webm"
    result = analyse_video(pipeline, clip, sample_fps=5, annotated=copy)
    capture = cv2.VideoCapture(str(copy))
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"VP80"
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(frames) == result.frames_sampled == 10 and frames[0].shape[:2] == (256, 256 + 20 * 2 + 2)
    for frame, obs in zip(frames, result.observations, strict=True):
        x0, y0, x1, y1 = obs.box
        edge = np.median(frame[y0 + 4:y1 - 4, x0].astype(int), axis=0)  # the box's left side (lossy: a median)
        assert np.abs(edge - np.array(LABEL_COLOURS["happy"])).max() < 40, edge


def test_clip_without_faces(tmp_path: Path, pipeline) -> None:
    grey = np.full((120, 160, 3), 90, np.uint8)
    path = write_clip(tmp_path / "empty.avi", grey, seconds=1.0, drift=0)
    result = analyse_video(pipeline, path, sample_fps=2)
    assert result.frames_sampled == 2 and result.frames_with_faces == 0
    assert result.summary() == [] and len(result.to_csv().splitlines()) == 1


def test_too_long_clip_refused(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fer.video, "MAX_VIDEO_SECONDS", 1.0)
    with pytest.raises(InputError, match=r"2\.0 s long, over the 1 s limit"):
        probe_video(clip)


def test_too_large_clip_refused(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fer.video, "MAX_VIDEO_BYTES", 1024)
    with pytest.raises(InputError, match="MB limit"):
        list(sample_frames(clip))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"this is not a video at all" * 10, "not a video OpenCV can read")],
)
def test_bad_files_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        probe_video(path)


def test_bad_arguments_refused(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="sample rate"):
        next(sample_frames(clip, sample_fps=0))
    with pytest.raises(InputError, match="max_frames"):
        next(sample_frames(clip, max_frames=0))


def test_decoding_is_bounded_before_and_while_reading(clip: Path) -> None:
    """A clip whose declared size × frame count is over the decode budget is refused before any
    frame is decoded; one whose header says less than it holds is stopped once the decoded pixels
    pass the budget."""
    info = probe_video(clip)
    per_frame = info.width * info.height
    with pytest.raises(InputError, match="too much to decode"):
        probe_video(clip, max_decode_pixels=per_frame * info.frames - 1)
    decoded: list[int] = []
    with pytest.raises(InputError, match="too much to decode"):
        for index, _, _ in sample_frames(clip, sample_fps=10, max_decode_pixels=per_frame * info.frames - 1):
            decoded.append(index)
    assert decoded == []  # refused on the header
    # The header's count hidden (as some containers do): counted while decoding instead.
    real_info = fer.video._info

    def no_count(capture, name, size, max_decode_pixels):
        found = real_info(capture, name, size, max_decode_pixels=10**12)
        return fer.video.VideoInfo(found.path, found.fps, 0, found.width, found.height, found.bytes)

    import unittest.mock

    with unittest.mock.patch.object(fer.video, "_info", no_count), pytest.raises(InputError, match="too much"):
        for index, _, _ in sample_frames(clip, sample_fps=10, max_decode_pixels=per_frame * 5):
            decoded.append(index)
    assert decoded == [0, 1, 2, 3, 4]


def test_a_deadline_stops_the_analysis(clip: Path, pipeline) -> None:
    import time

    with pytest.raises(JobTimeout, match="takes longer to analyse than this server allows"):
        list(sample_frames(clip, deadline=time.monotonic() - 1))
    with pytest.raises(JobTimeout):
        analyse_video(pipeline, clip, time_limit_s=0.0)
    assert analyse_video(pipeline, clip, time_limit_s=60.0).frames_sampled == 10
