"""`fer.app.evaluate`: a zip of labelled faces held in memory → accuracy, per-class table, confusion
plot, and the numbers the session keeps; nothing of the archive left on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.app import evaluate
from fer.app.settings import Settings, default_settings

from .badinputs import _zip
from .conftest import NO_FACE


@pytest.fixture(scope="module")
def settings() -> Settings:
    return default_settings("mini_xception_fer2013")


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_an_archive_is_scored_and_leaves_nothing(settings: Settings, astronaut: np.ndarray, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_APP_DIR", str(tmp_path))
    face = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    archive = _zip({"faces/happy/s1_a.png": png(face), "faces/happy/s2_b.png": png(face[:, ::-1].copy()),
                    "faces/sad/s3_c.png": NO_FACE.read_bytes()})
    report = evaluate.evaluate_archive(archive, "faces.zip", settings)
    assert report.ok, report.message
    assert report.result["n"] == 2 and report.result["accuracy"] == 1.0
    assert "1 skipped" in report.message and "**Accuracy 100.0%** on n=2" in report.headline
    # n, a 95 % interval and the labels it covers; the matrix as a table, not only as a plot.
    assert "(95 % interval 34–100 %), over 1 of 7 expressions (happy)" in report.headline
    assert "| true ↓ / answered → |" in report.headline and "| **happy** |" in report.headline
    assert report.result["skipped"] == [{"file": "faces/sad/s3_c.png", "reason": "no face found"}]
    assert [row[0] for row in report.rows] == ["happy", "sad"] and report.figure.dtype == np.uint8
    assert report.record == {"config": settings.config.to_dict(), "model": "mini_xception_fer2013",
                             "labels": report.result["labels"], "confusion": report.result["confusion"], "images": 3}
    assert list(tmp_path.rglob("*")) == []  # read in memory: no folder, no file, no face cache


def test_a_single_label_folder_is_data_not_a_wrapper(settings: Settings, astronaut: np.ndarray) -> None:
    face = png(cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA))
    report = evaluate.evaluate_archive(_zip({"happy/a.png": face, "happy/b.png": face}), "happy.zip", settings)
    assert report.ok and report.result["n"] == 2 and report.rows[0][0] == "happy", report.message


def test_refusals(settings: Settings) -> None:
    empty = evaluate.evaluate_archive(_zip({"notes/readme.txt": b"hi"}), "text.zip", settings)
    assert not empty.ok and "holds no images" in empty.message
    # Each refusal names the upload and restates the layout expected.
    assert empty.message.startswith("text.zip") and empty.message.endswith(f"Expected {evaluate.LAYOUT}.")
    wrong = evaluate.evaluate_archive(b"x", "faces.tar", settings)
    assert wrong.message == f"faces.tar: wrong file type; upload a .zip of labelled face images ({evaluate.LAYOUT})."
    evil = evaluate.evaluate_archive(_zip({"../x.png": b"1"}), "evil.zip", settings)
    assert not evil.ok and "refused entry" in evil.message and evil.record is None
    assert "evil.zip" in evil.message and "label/*.jpg" in evil.message
    assert "Upload a .zip" in evaluate.from_widget(None, settings).message


def test_an_evaluation_past_its_time_limit_stops_in_one_line(settings: Settings, astronaut: np.ndarray,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    face = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    archive = _zip({"happy/a.png": png(face), "sad/b.png": png(face[:, ::-1].copy())})
    monkeypatch.setattr(evaluate, "MAX_EVALUATE_JOB_S", -1.0)  # already past the limit when it starts
    report = evaluate.evaluate_archive(archive, "faces.zip", settings)
    assert not report.ok and report.message.startswith("faces.zip: stopped after -1 s") and "\n" not in report.message
