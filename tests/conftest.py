"""Shared fixtures: real shipped assets and weights, loaded once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Exported ONNX graphs (fer.opencv_dnn's cache) go to a folder of this test run, not the user's
# ~/.cache; subprocesses (CLI, app, benchmark) inherit it.
_CACHE = tempfile.mkdtemp(prefix="fer-test-cache-")
os.environ["FER_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """The test run is an entry point like the CLI and the app: one torch thread, as they use (the
    library itself never sets it), so that concurrent tests and other work do not starve each other."""
    import torch

    torch.set_num_threads(1)


#: Screenshots, server logs and load-test reports the tests leave for a person to look at: outside
#: the repository (tests write nothing into it), $FER_TEST_ARTIFACTS or <tmp>/fer-test-artifacts.
ARTIFACTS_DIR = Path(os.environ.get("FER_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "fer-test-artifacts")

ASSETS = ROOT / "assets"
ASTRONAUT = ASSETS / "astronaut.png"
NO_FACE = ASSETS / "coffee.png"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The scikit-image astronaut (Eileen Collins, public domain): (512, 512, 3) uint8, one smiling face."""
    from fer.io import read_image

    return read_image(ASTRONAUT)


@pytest.fixture(scope="session")
def detector():
    from fer.face import FaceDetector

    with FaceDetector() as det:
        yield det


@pytest.fixture(scope="session")
def pipeline():
    """The default pipeline (shipped mini-Xception + short-range detector) with face-prior saliency."""
    import fer

    with fer.load(saliency="face-prior", attention=True) as pipe:
        yield pipe


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the one helper every test that starts a server uses)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compose_faces(image: np.ndarray, box: tuple[int, int, int, int], count: int, side: int = 200) -> np.ndarray:
    """A (side*1.6, count*side*1.3) canvas holding ``count`` copies of the face region of ``image``
    (box enlarged 1.8x), of decreasing size, on a mid-grey background."""
    import cv2

    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.9 * max(x1 - x0, y1 - y0)
    patch = image[int(cy - half):int(cy + half), int(cx - half):int(cx + half)]
    canvas = np.full((int(side * 1.6), int(count * side * 1.3)), 128, np.uint8)
    canvas = np.repeat(canvas[..., None], 3, axis=2)
    for i in range(count):
        s = int(side * (1.0 - 0.12 * i))
        tile = cv2.resize(patch, (s, s), interpolation=cv2.INTER_AREA)
        x, y = int(i * side * 1.3 + 10), int(side * 0.3)
        canvas[y:y + s, x:x + s] = tile
    return canvas


def threads_disagreeing(call: Callable[[Any], Any], inputs: Sequence[Any], rounds: int) -> list[int]:
    """Run ``call(inputs[i])`` ``rounds`` times in thread ``i``, all threads at once, and compare
    every answer with the one ``call(inputs[i])`` gave alone beforehand (`np.array_equal`).

    Returns:
        The indices of the threads that ever got another answer (empty when all agreed).
    Raises:
        Whatever a call raised in a thread.
    """
    expected = [call(x) for x in inputs]
    wrong: list[int] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(rounds):
                if not np.array_equal(call(inputs[i]), expected[i]):
                    wrong.append(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sorted(set(wrong))
