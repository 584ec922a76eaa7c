"""`fer.app.video`: a clip held in memory, sampled at an offered rate only; what ``/analyse_video``
answers; the shipped example clip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fer.app import video
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


def test_the_example_clip_is_analysed(settings: Settings) -> None:
    report = video.analyse_clip(video.EXAMPLE.read_bytes(), "clip.mp4", settings, "5")
    assert report.ok and report.message.startswith("clip.mp4: 4.0 s at 25 frames/s; 20 frames sampled")
    assert report.rows[0][0] == 1 and report.rows[0][4] == "happy" and "<polyline" in report.timelines
    assert report.csv.count("\n") == 21
    assert "Over this clip mini-Xception and face-api agreed on <b>100%</b> of 20 faces." in report.message
    values = video.report_outputs(report)
    assert values[0] == report.message and values[3]["url"].startswith("data:text/csv;base64,")


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
    assert list((tmp_path / "work").iterdir()) == []
