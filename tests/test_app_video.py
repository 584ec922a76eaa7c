"""`fer.app.video`: a clip held in memory, sampled at an offered rate only; what ``/analyse_video``
answers; the shipped example clip."""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.app import video
from fer.app.media import data_url_bytes
from fer.app.settings import Settings, default_settings
from fer.errors import InputError

from .badinputs import video_cases
from .conftest import ASTRONAUT


@pytest.fixture(scope="module")
def settings() -> Settings:
    return default_settings("mini_xception_fer2013")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return {c.name: c.make() for c in video_cases(tmp_path_factory.mktemp("clips"))}


@pytest.mark.parametrize("value", ["5", 5, 5.0, "10", 1])
def test_offered_rates_are_taken(value: object) -> None:
    assert video.check_fps(value) in video.SAMPLE_FPS


@pytest.mark.parametrize("value", ["nan", "inf", "abc", None, math.nan, 3, "7.5", -5, [5], "1e9"])
def test_other_rates_are_refused(value: object) -> None:
    with pytest.raises(InputError, match="frames per second must be one of 1, 2, 5, 10"):
        video.check_fps(value)


def test_the_example_clip_is_one_face_analysed_with_an_annotated_copy(settings: Settings) -> None:
    """The astronaut stays one face from start to end; the copy travels inline, as a WebM."""
    report = video.analyse_clip(video.EXAMPLE.read_bytes(), "clip.mp4", settings, "5")
    assert report.ok and report.message.startswith("clip.mp4: 4.0 s at 25 frames/s; 20 frames sampled "
                                                   "(5 per second), 20 with a face, 1 face track.")
    assert report.rows == [[1, 20, 0.0, 3.8, "happy", 1.0, report.rows[0][6]]] and report.rows[0][6] > 0.5
    assert "<polyline" in report.timelines and report.csv.count("\n") == 21
    assert "Over this clip mini-Xception and face-api agreed on <b>100%</b> of 20 faces." in report.message
    values = video.report_outputs(report)
    assert values[0] == report.message and values[3]["url"].startswith("data:text/csv;base64,")
    copy = values[4]
    assert copy["path"] is None and copy["orig_name"] == "video-annotated.webm"
    assert data_url_bytes(copy["url"])[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    assert copy["url"].startswith("data:video/webm;base64,")


def test_every_face_shares_the_clips_time_axis(settings: Settings, tmp_path: Path) -> None:
    """Two faces seen at different times: both timelines span the whole clip, with the same ticks."""
    face = cv2.resize(cv2.imread(str(ASTRONAUT))[29:229, 124:324], (160, 160))  # the head
    path = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (400, 200))
    for i in range(30):  # 3 s: a face on the left for 1.5 s, then one on the right
        frame = np.full((200, 400, 3), 128, np.uint8)
        left = 10 if i < 15 else 230
        frame[20:180, left:left + 160] = face
        writer.write(frame)
    writer.release()
    report = video.analyse_clip(path.read_bytes(), "two.avi", settings, "5")
    assert report.ok and len(report.rows) == 2, report.message
    charts = re.findall(r"<svg.*?</svg>", report.timelines)
    assert len(charts) == 2
    ticks = [re.findall(r'class="fer-axis">([^<]* s)</text>', svg) for svg in charts]
    assert ticks[0] == ticks[1] and ticks[0][:2] == ["0.0 s", "3.0 s"] and "1 s" in ticks[0], ticks
    assert sorted(row[2] for row in report.rows)[0] == 0.0 and sorted(row[2] for row in report.rows)[1] >= 1.4


def test_the_summary_columns_are_plain_words() -> None:
    assert video.SUMMARY_HEADERS == ["face", "frames seen", "from (s)", "to (s)", "most often",
                                     "share of frames", "mean probability"]


def test_a_non_video_upload_gets_one_line_naming_it(clips: dict[str, bytes]) -> None:
    assert video.check_clip(clips["video-good"], "good.mp4") is None
    assert video.check_clip(clips["video-text"], "notes.mp4").startswith("notes.mp4: not a video")
    assert "still image, not a video" in video.check_clip(ASTRONAUT.read_bytes(), "me.mp4")
    assert "s limit" in video.check_clip(clips["video-too-long"], "long.mp4")


def test_a_1000_fps_clip_is_four_seconds_long(settings: Settings, clips: dict[str, bytes]) -> None:
    report = video.analyse_clip(clips["video-1000fps"], "fast.mp4", settings, "5")
    assert report.ok, report.message
    assert "4.0 s at 1000 frames/s; 20 frames sampled" in report.message


def test_refusals_name_the_clip_not_the_server_file(settings: Settings, clips: dict[str, bytes]) -> None:
    for name, reason in [("video-text", "not a video"), ("video-too-long", "s limit"), ("video-empty", "empty")]:
        report = video.analyse_clip(clips[name], "holiday.mp4", settings, "5")
        assert not report.ok and report.message.startswith("holiday.mp4:") and reason in report.message
        assert "fer-video-" not in report.message and "/" not in report.message.split(":", 1)[0]
    still = video.analyse_clip(ASTRONAUT.read_bytes(), "me.mp4", settings, "5")
    assert not still.ok and "still image, not a video" in still.message
    bad_rate = video.analyse_clip(clips["video-good"], "good.mp4", settings, "nan")
    assert not bad_rate.ok and "frames per second" in bad_rate.message


def test_nothing_is_left_in_the_work_folder(settings: Settings, clips: dict[str, bytes], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path))
    video.analyse_clip(clips["video-good"], "good.mp4", settings, "2")
    video.analyse_clip(clips["video-text"], "bad.mp4", settings, "2")
    video.check_clip(clips["video-good"], "good.mp4")
    assert list((tmp_path / "work").iterdir()) == []
