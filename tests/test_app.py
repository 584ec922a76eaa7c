"""The app: its handlers (`fer.demo`) on real images and the shipped model, the zip guard, the
figures, and ``python app.py`` answering `gradio_client` on ``/predict``."""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer import demo
from fer.errors import InputError
from fer.io import read_image
from fer.live import SessionConfusion
from fer.plots import (
    confusion_figure,
    figure_to_array,
    label_colours_hex,
    model_confusion_figure,
    session_confusion_figure,
    timeline_table,
)

from .conftest import ASTRONAUT, NO_FACE, ROOT


@pytest.fixture(scope="module")
def settings() -> demo.Settings:
    return demo.default_settings("mini_xception_fer2013")


# --------------------------------------------------------------------------- image tab and /predict


def test_astronaut_is_happy(settings: demo.Settings) -> None:
    result = demo.analyse_image(str(ASTRONAUT), settings)
    assert result.ok and len(result.predictions) == 1
    assert result.predictions[0].label == "happy"
    assert result.captions()[0].startswith("#1 happy")
    top = result.top_k(0)
    assert list(top)[0] == "happy" and len(top) == settings.top_k and top["happy"] > 0.5
    data = result.to_json()
    assert data["faces"][0]["label"] == "happy" and data["faces"][0]["face"] == 1
    assert len(data["faces"][0]["box"]) == 4
    annotated = result.annotated()
    assert annotated.shape == result.image.shape and not np.array_equal(annotated, result.image)
    crop, caption = result.gallery()[0]
    assert crop.shape == (224, 224, 3) and caption == result.captions()[0]


def test_face_views_show_saliency_cnn_input_and_gradcam(settings: demo.Settings) -> None:
    result = demo.analyse_image(str(ASTRONAUT), settings)
    view, trust = demo.image_face_view(result, 0)
    for picture in (view.saliency, view.model_input, view.attention):
        assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    # The shipped model is grey 64×64: what the CNN sees is grey, in 64 visible pixel blocks.
    assert np.array_equal(view.model_input[..., 0], view.model_input[..., 2])
    assert len(np.unique(view.model_input[:, 0, 0])) <= 64
    assert "face-prior" in view.captions["saliency"] and "Grad-CAM for happy" in view.captions["attention"]
    # The shipped model has no bundled evaluation: say so, draw nothing.
    assert trust.figure is None and "without a measured evaluation" in trust.text
    assert demo.image_face_view(None, 0) == (demo.FaceView(), None)


def test_no_face_is_a_friendly_message(settings: demo.Settings) -> None:
    result = demo.analyse_image(str(NO_FACE), settings)
    assert result.ok and result.predictions == [] and result.top_k(0) == {}
    data = result.to_json()
    assert data["faces"] == [] and data["message"] == demo.NO_FACE_MESSAGE
    assert result.annotated().shape == result.image.shape


def test_result_keeps_the_upload_bytes_for_a_redo(tmp_path: Path, settings: demo.Settings) -> None:
    upload = tmp_path / "abc123" / "me.png"
    upload.parent.mkdir()
    upload.write_bytes(ASTRONAUT.read_bytes())
    result = demo.analyse_image({"path": str(upload), "orig_name": "me.png"}, settings)
    assert result.source == ASTRONAUT.read_bytes() and result.name == "me.png"
    upload.unlink()  # the app deletes the upload once read
    other = dataclasses.replace(settings, saliency="spectral-residual")
    redone = demo.reanalyse(result, other)
    assert redone.ok and redone.predictions[0].label == "happy" and redone.settings == other
    assert redone.predictions[0].saliency_name == "spectral-residual" and redone.source == result.source
    assert demo.reanalyse(None, other) is None
    refused = demo.analyse_image({"path": str(upload), "orig_name": "me.png"}, settings)
    assert refused.message == "me.png: no such file" and refused.source is None
    assert demo.reanalyse(refused, other) is None
    # A picture handed over decoded has no bytes to keep.
    assert demo.analyse_image(result.image, settings).source is None


def test_pictures_and_downloads_travel_inline(astronaut: np.ndarray) -> None:
    record = demo.inline_image(astronaut, "faces.jpg")
    assert record["path"] is None and record["url"].startswith("data:image/jpeg;base64,")
    assert record["orig_name"] == "faces.jpg" and record["meta"] == {"_type": "gradio.FileData"}
    jpeg = demo.data_url_bytes(record["url"])
    assert record["size"] == len(jpeg) and np.abs(read_image(jpeg).astype(int) - astronaut).mean() < 4
    png = demo.inline_image(astronaut, "plot.png")
    assert png["mime_type"] == "image/png" and np.array_equal(read_image(demo.data_url_bytes(png["url"])), astronaut)
    csv = demo.inline_file(b"a,b\n1,2\n", "x.csv", "text/csv")
    assert demo.data_url_bytes(csv["url"]) == b"a,b\n1,2\n" and csv["size"] == 8
    with pytest.raises(InputError, match="not a base64 data: URL"):
        demo.data_url_bytes("/gradio_api/file=/tmp/x.png")
    with pytest.raises(InputError, match="cannot encode"):
        demo.encode_image(astronaut, "gif")


def test_gradio_file_records_and_extreme_shapes(settings: demo.Settings) -> None:
    record = {"path": str(ASTRONAUT), "orig_name": "me.png", "meta": {"_type": "gradio.FileData"}}
    assert demo.upload_source(record) == (str(ASTRONAUT), "me.png")
    assert demo.analyse_image(record, settings).predictions[0].label == "happy"
    text = ROOT / "requirements.txt"
    refused = demo.analyse_image({"path": str(text), "orig_name": "holiday.jpg"}, settings)
    assert not refused.ok and refused.message.startswith("holiday.jpg:") and str(ROOT) not in refused.message
    assert demo.fit_image(np.zeros((1, 4000, 3), np.uint8), 1280).shape == (1, 1280, 3)
    assert demo.fit_image(np.zeros((10, 20, 3), np.uint8), 1280).shape == (10, 20, 3)


@pytest.mark.parametrize(("image", "message"), [
    (b"not an image", "not an image format"),
    (None, "Upload, paste or snap"),
    (np.zeros((4, 4), np.float32), "uint8"),
])
def test_bad_images_are_messages_not_errors(settings: demo.Settings, image: object, message: str) -> None:
    result = demo.analyse_image(image, settings)
    assert not result.ok and message in result.message and result.predictions == []


def test_settings_validation_and_pipeline_cache(settings: demo.Settings) -> None:
    with pytest.raises(InputError, match="max faces"):
        demo.make_settings("mini_xception_fer2013", "face-prior", max_faces=0)
    with pytest.raises(InputError, match="smoothing"):
        demo.make_settings("mini_xception_fer2013", "face-prior", smoothing=2)
    full = demo.make_settings("mini_xception_fer2013", "spectral-residual", "on", 0.3, 5, "full", 4, 0.2)
    assert full.saliency_input is True and full.detector == "full" and full.top_k == 4
    ok, status = demo.apply_settings(demo.make_settings("no-such-model", "face-prior"))
    assert not ok and "unknown model" in status
    cache = demo.PipelineCache(size=1)
    first = cache.get(settings)
    assert cache.get(settings) is first
    cache.get(full)  # evicts the first
    assert cache.get(settings) is not first
    ok, status = demo.apply_settings(full)
    assert ok and "face × saliency" in status


def test_model_choices_list_registered_models_and_local_runs(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "rafd-alexnet"
    run.mkdir(parents=True)
    (run / "best.json").write_text("{}")
    (run / "best.safetensors").write_bytes(b"")
    values = [value for _, value in demo.model_choices(runs=tmp_path / "runs")]
    assert values[0] == "mini_xception_fer2013" and values[1] == str(run / "best.json")
    assert [c for c in demo.saliency_choices()][0] == ("face-prior", "face-prior")


# --------------------------------------------------------------------------- live tab


def test_live_step_tracks_and_smooths(settings: demo.Settings, astronaut: np.ndarray) -> None:
    session, out = demo.live_step(astronaut, settings, demo.NOT_POSING, None, now=100.0)
    assert session is not None and session.labels == tuple(session.confusion.labels)
    assert out.annotated.shape == astronaut.shape and list(out.view.top_k)[0] == "happy"
    assert out.view.attention is not None and out.view.saliency is not None
    assert out.stats.trust is not None and "without a measured evaluation" in out.stats.trust.text
    first = session.tracker.tracks[0].probabilities.copy()
    session, out = demo.live_step(np.roll(astronaut, 6, axis=1), settings, demo.NOT_POSING, session, now=100.1)
    assert [t.id for t in session.tracker.tracks] == [1]  # same face, same id
    assert session.confusion.total == 0  # not posing: nothing counted
    raw = demo.PIPELINES.get(settings)(np.roll(astronaut, 6, axis=1))[0].probabilities
    expected = settings.smoothing * first + (1 - settings.smoothing) * raw
    np.testing.assert_allclose(session.tracker.tracks[0].probabilities, expected / expected.sum(), atol=1e-4)
    session, _ = demo.live_step(astronaut, settings, "happy", session, now=100.2)
    assert session.confusion.total == 1
    _, off = demo.live_step(None, settings, "happy", session)
    assert off.annotated is None and "Camera off" in off.status


def test_live_stats_take_turns() -> None:
    from fer.models import ModelSpec, spec_path_for

    spec = ModelSpec.load(spec_path_for("default"))
    session = demo.new_live_session(spec.labels)
    happy = np.eye(len(spec.labels), dtype=np.float32)[spec.labels.index("happy")]

    def frame(now: float, highlight: str = "happy") -> set[str]:
        session.observe(now, [(10, 10, 110, 110)], happy[None])
        stats = demo.live_stats(session, spec, highlight, now)
        return {name for name in ("trust", "session", "timeline") if getattr(stats, name) is not None}

    # Never more than one figure per frame: the answer's panel, then the timeline, then the matrix.
    assert [frame(0.1 * i) for i in range(4)] == [{"trust"}, {"timeline"}, {"session"}, set()]
    # The timeline again after 1 s and 5 frames; the session matrix not while its counts stay put.
    drawn = {round(0.1 * i, 1): frame(0.1 * i) for i in range(4, 40)}
    assert [t for t, d in drawn.items() if d] == [1.1, 2.1, 3.1]
    assert all(d in (set(), {"timeline"}) for d in drawn.values())
    session.confusion.add("happy", "happy")
    assert frame(4.0) == {"session"}
    # A slow stream (a loaded server, 2 s per frame) redraws a figure at most every 5th frame.
    slow = [frame(10.0 + 2 * i) for i in range(10)]
    assert slow[0] == {"timeline"} and slow[1:5] == [set()] * 4 and slow[5] == {"timeline"}
    # A new answer: its panel first, once due.
    assert frame(40.0, "sad") == {"trust"} and session.last_highlight == "sad"


def test_live_figures_are_drawn_more_rarely_when_many_streams_share_the_server() -> None:
    from fer.models import ModelSpec, spec_path_for

    spec = ModelSpec.load(spec_path_for("default"))
    happy = np.eye(len(spec.labels), dtype=np.float32)[spec.labels.index("happy")]

    def timeline_times(streams: int) -> list[float]:
        session = demo.new_live_session(spec.labels)
        times = []
        for i in range(80):  # 8 s at 10 frames/s, answer unchanged
            now = round(0.1 * i, 1)
            session.observe(now, [(10, 10, 110, 110)], happy[None])
            if demo.live_stats(session, spec, "happy", now, streams).timeline is not None:
                times.append(now)
        return times

    alone, crowded = timeline_times(1), timeline_times(4 * demo.STATS_FULL_RATE_STREAMS)
    assert timeline_times(demo.STATS_FULL_RATE_STREAMS) == alone  # up to that many: the full rate
    assert len(alone) >= 7 and np.diff(alone).min() >= 1.0 and np.diff(alone).max() < 1.2
    assert len(crowded) == 2 and np.diff(crowded).min() >= 4.0  # 4x the streams: a quarter of the rate
    assert crowded[0] == alone[0]  # a new stream still gets its first figure at once


def test_live_timeline_is_a_table_of_the_top_labels() -> None:
    labels = ["angry", "happy", "sad", "neutral"]
    times = np.array([0.0, 0.1, 0.2])
    values = np.array([[0.1, 0.7, 0.1, 0.1], [0.2, 0.5, 0.0, 0.3], [0.6, 0.2, 0.1, 0.1]], np.float32)
    table = timeline_table(times, values, labels, top=2)
    assert list(table.columns) == ["seconds", "probability", "expression"]
    assert list(table["expression"]) == ["happy"] * 3 + ["angry"] * 3  # highest peaks first
    np.testing.assert_allclose(table["probability"], [0.7, 0.5, 0.2, 0.1, 0.2, 0.6], atol=1e-6)
    np.testing.assert_allclose(table["seconds"], [0.0, 0.1, 0.2] * 2)
    assert timeline_table(np.zeros(0), np.zeros((0, 4)), labels).empty
    colours = label_colours_hex(labels)
    assert set(colours) == set(labels) and all(len(c) == 7 and c.startswith("#") for c in colours.values())


def test_active_streams_are_counted_within_the_window() -> None:
    streams = demo.ActiveStreams(window_s=3.0)
    assert streams.touch(1, 100.0) == 1
    assert streams.touch(2, 101.0) == 2
    assert streams.touch(1, 102.0) == 2
    assert streams.touch(3, 104.5) == 2  # stream 2's last frame was 3.5 s ago: gone
    assert streams.touch(4, 0.0) == 1  # another clock (a test's): the others are far away


def test_session_confusion_is_per_session_and_resets(settings: demo.Settings, astronaut: np.ndarray) -> None:
    one = two = None
    for i in range(3):
        one, _ = demo.live_step(astronaut, settings, "happy", one, now=float(i))
    for i in range(2):
        two, _ = demo.live_step(astronaut, settings, "sad", two, now=float(i))
    assert one is not two
    assert one.confusion.total == 3 and one.confusion.accuracy == 1.0
    assert two.confusion.total == 2 and two.confusion.accuracy == 0.0
    assert two.confusion.top_confusions() == [("sad", "happy", 2)]
    assert "posed sad → said happy (2×)" in demo.session_text(two)
    assert demo.session_csv(two).splitlines()[5].startswith("sad,0,0,0,2")
    assert demo.session_csv(None) is None
    demo.reset_session_counts(one)
    assert one.confusion.total == 0 and two.confusion.total == 2


def test_webcam_frames_are_decoded_with_limits(settings: demo.Settings, astronaut: np.ndarray) -> None:
    url = demo.data_url(astronaut, quality=95)
    frame = demo.decode_frame(url)
    assert frame.shape == astronaut.shape and np.abs(frame.astype(int) - astronaut).mean() < 4
    assert demo.decode_frame({"url": url, "meta": {"_type": "gradio.FileData"}}).shape == astronaut.shape
    assert demo.decode_frame(None) is None and demo.decode_frame({"url": None, "path": None}) is None
    jpeg = url.split(",", 1)[1]
    broken = {
        "not valid base64": "data:image/jpeg;base64,@@@",
        "not an image": "data:image/png;base64,aGVsbG8=",
        "corrupt or truncated": "data:image/jpeg;base64," + jpeg[: len(jpeg) // 3 // 4 * 4],
    }
    for reason, bad in broken.items():
        with pytest.raises(InputError, match=reason):
            demo.decode_frame(bad)
        # In the stream, a broken frame is a one-line status and the next frame works.
        session, out = demo.live_step(bad, settings, demo.NOT_POSING, None, now=0.0)
        assert session is None and out.annotated is None and out.status.startswith("⚠️") and "\n" not in out.status
    session, out = demo.live_step(url, settings, demo.NOT_POSING, None, now=1.0)
    assert list(out.view.top_k)[0] == "happy"


def test_live_panels_are_inline_pictures() -> None:
    html = demo.image_html(np.zeros((8, 8, 3), np.uint8), "a <caption>")
    assert 'src="data:image/jpeg;base64,' in html and "a &lt;caption&gt;" in html
    assert "no face in view" in demo.image_html(None, "x")


# --------------------------------------------------------------------------- confusion statistics


EVALUATION = {
    "dataset": "rafd", "split": "test", "n": 20, "accuracy": 0.8, "labels": ["fear", "happy", "surprise"],
    "confusion": [[4, 0, 2], [0, 6, 0], [2, 0, 6]],
}


def test_trust_text_reads_the_column_of_the_answer() -> None:
    text = demo.trust_text(EVALUATION, "surprise")
    assert "n=20, accuracy 80.0%" in text
    assert "When the model says **surprise**, the truth was: surprise 75%, fear 25% (of 8 such answers)" in text
    assert "it found 75%" in text
    assert "had no **sad** class" in demo.trust_text(EVALUATION, "sad")
    assert "without a measured evaluation" in demo.trust_text(None, "happy", "m")


def test_confusion_figures_render_with_highlight() -> None:
    fig = model_confusion_figure(EVALUATION, highlight="surprise")
    outlines = [p for p in fig.axes[0].patches]
    assert len(outlines) == 2  # the column (model said it) and the row (it was the truth)
    pixels = figure_to_array(fig)
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
    conf = SessionConfusion(["happy", "sad"])
    conf.add("happy", "sad", 3)
    assert "3 frames, accuracy 0%" in session_confusion_figure(conf).get_suptitle()
    with pytest.raises(ValueError, match="does not fit"):
        confusion_figure(np.zeros((2, 2)), ["a", "b", "c"])


# --------------------------------------------------------------------------- video tab


def test_video_handler(tmp_path: Path, settings: demo.Settings, astronaut: np.ndarray) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (256, 256))
    small = cv2.cvtColor(cv2.resize(astronaut, (256, 256)), cv2.COLOR_RGB2BGR)
    for _ in range(5):
        writer.write(small)
    writer.release()
    report = demo.analyse_video_file(str(path), settings, sample_fps=5)
    assert report.ok and report.rows[0][4] == "happy" and report.figure is not None
    assert report.csv.count("\n") == 6
    refused = demo.analyse_video_file(str(ASTRONAUT), settings)
    assert not refused.ok and "still image, not a video" in refused.message and refused.csv is None
    assert refused.message.startswith("astronaut.png:")  # the upload's name, not the server's path
    named = demo.analyse_video_file(str(ASTRONAUT), settings, name="holiday.mp4")
    assert named.message.startswith("holiday.mp4:") and str(ROOT) not in named.message
    assert not demo.analyse_video_file(None, settings).ok


# --------------------------------------------------------------------------- evaluate tab and zip safety


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


def png_bytes(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.txt", "refused entry '../evil.txt'"),
    ("happy/../../evil.txt", "refused entry"),
    ("/etc/evil.txt", "refused entry '/etc/evil.txt'"),
    ("C:/evil.txt", "refused entry"),
])
def test_zip_escaping_names_refused(tmp_path: Path, name: str, reason: str) -> None:
    archive = make_zip(tmp_path / "a.zip", {"happy/ok.txt": b"fine", name: b"evil"})
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        demo.safe_extract(archive, dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # names are checked before anything is written


def test_zip_limits_refused(tmp_path: Path) -> None:
    many = make_zip(tmp_path / "many.zip", {f"happy/{i}.txt": b"x" for i in range(5)})
    with pytest.raises(InputError, match="5 entries, over the 3 limit"):
        demo.safe_extract(many, tmp_path, max_entries=3)
    big = make_zip(tmp_path / "big.zip", {"happy/zeros.bin": bytes(3 * 2**20)})
    with pytest.raises(InputError, match="unpack to 3 MB, over the 1 MB limit"):
        demo.safe_extract(big, tmp_path / "x", max_unpacked=2**20)
    with pytest.raises(InputError, match="over the 0 MB limit"):
        demo.safe_extract(big, tmp_path / "x", max_bytes=100)
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(InputError, match="not a zip archive"):
        demo.safe_extract(not_zip, tmp_path)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("happy/link")
        info.external_attr = (0o120777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        demo.safe_extract(link, tmp_path / "y")


def test_zip_bomb_with_lying_sizes_refused(tmp_path: Path) -> None:
    data = bytearray(make_zip(tmp_path / "bomb.zip", {"happy/zeros.bin": bytes(2**20)}).read_bytes())
    # Claim 10 bytes unpacked in both the local header and the central directory.
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, 10)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)
    bomb = tmp_path / "lying.zip"
    bomb.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged entry"):
        demo.safe_extract(bomb, tmp_path / "out")


def test_evaluate_zip_scores_and_leaves_nothing_behind(
    tmp_path: Path, settings: demo.Settings, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    face = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    archive = make_zip(tmp_path / "faces.zip", {
        "faces/happy/s1_a.png": png_bytes(face),
        "faces/happy/s2_b.png": png_bytes(face[:, ::-1].copy()),
        "faces/sad/s3_c.png": NO_FACE.read_bytes(),  # no face: skipped, not an error
    })
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    report = demo.evaluate_zip(str(archive), settings)
    assert report.ok, report.message
    assert report.result["n"] == 2 and report.result["accuracy"] == 1.0
    assert "1 skipped" in report.message and "**Accuracy 100.0%** on n=2" in report.headline
    # Named as inside the archive: no server path, nothing a Gradio client would take for a file.
    assert report.result["skipped"] == [{"file": "faces/sad/s3_c.png", "reason": "no face found"}]
    assert [row[0] for row in report.rows] == ["happy", "sad"]
    assert report.figure.ndim == 3 and report.figure.dtype == np.uint8
    assert list(scratch.iterdir()) == []  # unpacked images and face crops are gone

    empty = demo.evaluate_zip(str(make_zip(tmp_path / "text.zip", {"notes/readme.txt": b"hi"})), settings)
    assert not empty.ok and "holds no images" in empty.message

    wrong = demo.evaluate_zip(str(archive), settings, name="faces.tar")
    assert not wrong.ok and wrong.message == "faces.tar: wrong file type; upload a .zip of labelled face images."

    evil = make_zip(tmp_path / "evil.zip", {"../x.png": b"1"})
    refused = demo.evaluate_zip(str(evil), settings)
    assert not refused.ok and "refused entry" in refused.message
    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------- the app itself


ELEM_IDS = [
    "live-webcam", "live-annotated", "live-saliency", "live-input", "live-gradcam", "live-top-k", "live-status",
    "live-model-confusion", "live-model-confusion-text", "posing-dropdown", "session-confusion", "session-stats",
    "session-reset", "session-export", "session-csv", "live-timeline",
    "upload-image", "image-status", "image-annotated", "face-gallery", "face-selector", "saliency-overlay",
    "cnn-input", "gradcam", "top-k-label", "model-confusion", "model-confusion-text", "faces-json",
    "upload-video", "video-fps", "video-run", "video-status", "video-timeline", "video-summary", "video-csv",
    "eval-zip", "eval-run", "eval-status", "eval-accuracy", "eval-table", "eval-plot", "eval-json",
    "model-choice", "saliency-choice", "saliency-input", "detector", "margin", "max-faces", "top-k", "smoothing",
    "settings-status", "about",
]


def test_app_layout_has_stable_element_ids() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        import app
    finally:
        sys.path.remove(str(ROOT))
    blocks = app.build_app()
    ids = [getattr(block, "elem_id", None) for block in blocks.blocks.values()]
    missing = [elem_id for elem_id in ELEM_IDS if elem_id not in ids]
    assert not missing
    assert len([i for i in ids if i]) == len({i for i in ids if i})  # unique
    assert "predict" in [fn.api_name for fn in blocks.fns.values()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_app_serves_predict_to_gradio_client(tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "app.log").open("wb")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core machine takes ~10-30 s to import and start
        while True:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "app did not start in time"
            time.sleep(1)
        client = Client(url, verbose=False)
        label, data = client.predict(handle_file(str(ASTRONAUT)), api_name="/predict")
        assert label["label"] == "happy"
        assert data["faces"][0]["label"] == "happy" and data["model"] == "mini_xception_fer2013"
        label, data = client.predict(handle_file(str(NO_FACE)), api_name="/predict")
        assert data["faces"] == [] and data["message"] == demo.NO_FACE_MESSAGE
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
