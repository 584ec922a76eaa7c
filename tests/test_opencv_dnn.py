"""The CNN on OpenCV DNN: same answers as PyTorch, refused cleanly when it would not be, thread-safe."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

import fer
from fer import opencv_dnn
from fer.cache import cache_dir
from fer.errors import InputError, WeightsError
from fer.models import predict_probabilities
from fer.zoo import load_model

from .conftest import threads_disagreeing


@pytest.fixture(scope="module")
def engines():
    return load_model("default", engine="auto"), load_model("default", engine="torch")


def _random_crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)


def test_auto_picks_opencv_on_the_cpu(engines) -> None:
    fast, slow = engines
    assert fast.engine == "opencv" and fast.net is not None
    assert slow.engine == "torch" and slow.net is None


def test_same_probabilities_and_features_as_pytorch(engines, astronaut) -> None:
    fast, slow = engines
    crops = np.concatenate([_random_crops(4), astronaut[None, 72:168, 177:273]])
    p_fast, p_slow = predict_probabilities(fast, crops), predict_probabilities(slow, crops)
    assert p_fast.shape == (5, 7) and np.allclose(p_fast.sum(axis=1), 1, atol=1e-5)
    assert np.abs(p_fast - p_slow).max() < 1e-5
    assert fast.spec.labels[int(p_fast[4].argmax())] == "happy"
    from fer.models import preprocess_array

    x = preprocess_array(crops, fast.spec)
    (l1, f1), (l2, f2) = fast.run(x, features=True), slow.run(x, features=True)
    assert f1 is not None and f2 is not None and f1.shape == f2.shape == (5, 128, 4, 4)
    assert np.abs(l1 - l2).max() < 1e-4 and np.abs(f1 - f2).max() < 1e-4


def test_pipeline_attention_is_the_same_on_both_engines(astronaut) -> None:
    with fer.load(engine="auto") as fast, fer.load(engine="torch") as slow:
        a = fast(astronaut, attention=True)
        b = slow(astronaut, attention=True, target="surprise")
        c = slow(astronaut, attention=True)
        d = fast(astronaut, attention=True, target="surprise")
    assert a[0].label == c[0].label == "happy"
    assert a[0].attention_label == "happy" and d[0].attention_label == b[0].attention_label == "surprise"
    assert np.abs(a[0].attention - c[0].attention).max() < 1e-4
    assert np.abs(d[0].attention - b[0].attention).max() < 1e-4
    assert np.abs(a[0].attention - d[0].attention).max() > 0.05  # explaining another class looks elsewhere


def test_an_export_opencv_cannot_read_falls_back_or_is_refused(monkeypatch, caplog) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", "off")  # no cached graph: the export itself must be refused
    monkeypatch.setattr(opencv_dnn, "export_onnx", lambda *a, **k: b"not an onnx graph")
    with caplog.at_level(logging.INFO, logger="fer.models"):
        loaded = load_model("default")
    assert loaded.engine == "torch" and loaded.net is None
    assert "runs on PyTorch" in caplog.text
    assert predict_probabilities(loaded, _random_crops(1)).shape == (1, 7)
    with pytest.raises(WeightsError, match="cannot run on OpenCV DNN"):
        load_model("default", engine="opencv")


def test_parity_check_refuses_a_graph_that_computes_something_else(monkeypatch) -> None:
    real = opencv_dnn.OpenCVNet.__call__

    def off_by_a_little(self, x):
        logits, features = real(self, x)
        return logits + 0.05, features

    monkeypatch.setattr(opencv_dnn.OpenCVNet, "__call__", off_by_a_little)
    with pytest.raises(WeightsError, match="logits differ from PyTorch"):
        load_model("default", engine="opencv")


def test_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="unknown engine 'onnxruntime'"):
        load_model("default", engine="onnxruntime")  # type: ignore[arg-type]


def test_concurrent_threads_get_their_own_answers(engines) -> None:
    """One ``cv2.dnn.Net`` per thread: parallel calls never mix inputs."""
    fast, _ = engines
    batches = [_random_crops(1 + i % 3, seed=i) for i in range(6)]
    assert threads_disagreeing(lambda b: predict_probabilities(fast, b), batches, rounds=40) == []


def test_the_exported_graph_is_cached_and_reused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    first = load_model("default")
    graphs = list((tmp_path / "onnx").glob("*.onnx"))
    assert first.engine == "opencv" and len(graphs) == 1 and graphs[0].stat().st_size > 100_000

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph was cached")

    monkeypatch.setattr(opencv_dnn, "export_onnx", no_export)
    second = load_model("default")
    assert second.engine == "opencv"
    crops = _random_crops(3)
    assert np.array_equal(predict_probabilities(first, crops), predict_probabilities(second, crops))


def test_a_damaged_or_foreign_cached_graph_is_exported_again(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    load_model("default")
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    good = graph.read_bytes()
    for bad in (b"garbage", good[: len(good) // 2]):
        graph.write_bytes(bad)
        loaded = load_model("default")
        assert loaded.engine == "opencv" and graph.read_bytes() == good
    # A readable graph of another network (here: PyTorch's mini-Xception with other weights) fails
    # the parity check and is replaced.
    import torch

    from fer.models import ARCHITECTURES

    other = ARCHITECTURES["mini_xception"].build(7, 1, False).eval()
    graph.write_bytes(opencv_dnn.export_onnx(other, other.features_out, torch.zeros(1, 1, 64, 64)))
    loaded = load_model("default")
    assert loaded.engine == "opencv" and graph.read_bytes() == good


def test_no_cache_when_the_folder_cannot_be_written(monkeypatch, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FER_CACHE_DIR", str(blocker))
    assert load_model("default").engine == "opencv"
    monkeypatch.setenv("FER_CACHE_DIR", "off")
    assert cache_dir("onnx") is None and load_model("default").engine == "opencv"


def test_the_cache_keeps_only_the_most_recent_graphs(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    for i in range(opencv_dnn.CACHE_KEEP + 3):
        opencv_dnn._cache_write(f"key{i:02d}", b"graph")
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == opencv_dnn.CACHE_KEEP
    assert not list((tmp_path / "onnx").glob("*.tmp"))


def test_models_loaded_by_several_threads_at_once_all_get_the_opencv_engine(monkeypatch) -> None:
    """The app loads pipelines for different settings concurrently: exports must not interfere."""
    monkeypatch.setenv("FER_CACHE_DIR", "off")  # every load exports
    loaded: list = []
    errors: list[str] = []

    def load() -> None:
        try:
            loaded.append(load_model("default"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(loaded) == 4
    assert all(m.engine == "opencv" for m in loaded)
    crops = _random_crops(2)
    first = predict_probabilities(loaded[0], crops)
    assert all(np.array_equal(predict_probabilities(m, crops), first) for m in loaded[1:])
