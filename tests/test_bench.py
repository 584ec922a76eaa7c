"""``python -m fer bench``: a tiny run produces the documented JSON; frames, table and chart are sane.

No timing is asserted here: speed is measured by the benchmark itself on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT

STAGES = ("decode (JPEG)", "crop/align", "saliency: face-prior", "saliency: spectral-residual", "face × saliency",
          "preprocess", "CNN forward", "Grad-CAM", "overlay rendering", "pipeline: detect → classify",
          "whole frame (pixels in)", "whole frame (JPEG in)", "CNN forward (PyTorch)", "Grad-CAM (PyTorch autograd)")


@pytest.fixture(scope="module")
def bench_doc() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "fer", "bench", "--json", "--iterations", "2", "--cold-runs", "1",
                             "--threads", "1"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)  # exactly one JSON object on stdout


def test_json_has_headline_keys(bench_doc):
    for key in ("pipeline_ms_p50", "detector_ms_p50", "fps", "cold_start_s", "rss_mb", "stages", "machine", "targets"):
        assert key in bench_doc, key
    for key in ("pipeline_ms_p50", "detector_ms_p50", "fps", "cold_start_s", "rss_mb", "classify_ms_p50",
                "live_step_ms_p50"):
        assert isinstance(bench_doc[key], float) and bench_doc[key] > 0, key
    # The whole frame contains the detector, so it cannot be cheaper than the detector alone.
    assert bench_doc["pipeline_over_detector"] > 1
    assert bench_doc["machine"]["cores"] >= 1 and bench_doc["machine"]["torch_threads"] >= 1
    assert set(bench_doc["targets"]) >= {"pipeline_over_detector", "fps", "cold_start_s", "rss_mb"}


def test_every_stage_measured_for_both_frames(bench_doc):
    assert bench_doc["frames"]["1 face"]["faces_found"] == 1
    assert bench_doc["frames"]["5 faces"]["faces_found"] == 5  # the full-range detector finds all five
    assert bench_doc["frames"]["5 faces"]["detector"] == "full"
    for frame in ("1 face", "5 faces"):
        names = {row["stage"] for row in bench_doc["stages"] if row["frame"] == frame}
        detector = f"detect ({bench_doc['frames'][frame]['detector']} range)"
        assert set(STAGES) | {detector} <= names, frame
    for row in bench_doc["stages"]:
        assert row["n"] == 2 and 0 < row["ms_p50"] <= row["ms_p90"], row


def test_detector_baseline_is_the_pipelines_own_with_mediapipe_beside_it(bench_doc):
    """The detector-alone row times the engine the pipeline runs; MediaPipe's detector on the same
    model is timed in the same rounds, as the before of the LiteRT engine."""
    assert bench_doc["machine"]["ai_edge_litert"]
    for frame in ("1 face", "5 faces"):
        info = bench_doc["frames"][frame]
        assert info["detector_engine"] == "litert"
        names = {row["stage"] for row in bench_doc["stages"] if row["frame"] == frame}
        assert f"detect, MediaPipe Tasks ({info['detector']} range)" in names


def test_every_registered_model_and_network_is_timed(bench_doc):
    from fer.models import ENSEMBLES, PRETRAINED

    models = [*PRETRAINED, *ENSEMBLES]
    assert list(bench_doc["models"]) == models
    for frame in ("1 face", "5 faces"):
        names = {row["stage"] for row in bench_doc["stages"] if row["frame"] == frame}
        for model in models:
            assert {f"classify faces: {model}", f"pipeline: detect → classify: {model}"} <= names
            assert bench_doc["models"][model][frame]["pipeline_ms_p50"] > 0
        for network in PRETRAINED:
            assert f"CNN forward: {network}" in names
        assert "crop (face_api_expression: box, margin 0)" in names


def test_table_and_chart(bench_doc, tmp_path):
    from fer.bench import format_table, plot_stages

    table = format_table(bench_doc)
    assert table.count("\n| ") >= len(STAGES) and "| CNN forward |" in table
    png = plot_stages(bench_doc, tmp_path / "stages.png", peer={"label": "peer", "ms_p50": {"1 face": 40.0}})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_frames_are_composed_from_assets():
    from fer.bench import FRAME_SHAPE, compose_frame

    one, five = compose_frame("1 face"), compose_frame("5 faces")
    assert one.shape == five.shape == (*FRAME_SHAPE, 3) and one.dtype == np.uint8
    assert not np.array_equal(one, five)
    from fer.errors import InputError

    with pytest.raises(InputError):
        compose_frame("3 faces")


@pytest.mark.parametrize("url", ["http://10.0.0.5:7860", "http://example.org", "http://192.168.1.2:7860"])
def test_stream_load_refuses_non_loopback(url):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import stream_load
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit):
        stream_load.check_loopback(url)
    assert stream_load.check_loopback("http://127.0.0.1:7860/") == "http://127.0.0.1:7860"


def test_peak_memory_is_the_childs_own() -> None:
    """A fresh process started by a large one reports its own peak, not its parent's (Linux's
    ``ru_maxrss`` survives fork and exec; ``VmHWM`` starts afresh)."""
    from fer.bench.timing import peak_rss_mb

    ballast = np.ones((400, 1024, 1024), np.uint8)  # 400 MB resident in this process
    assert peak_rss_mb() >= 400
    child = subprocess.run([sys.executable, "-c", "from fer.bench.timing import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True, timeout=120, cwd=ROOT)
    del ballast
    assert float(child.stdout.strip()) < 200  # a bare interpreter and fer.bench's imports
