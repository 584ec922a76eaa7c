"""The command line, run as a user would (subprocess), checked against the documented schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fer.cli import COMMANDS

from .conftest import ASTRONAUT, NO_FACE, ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "fer", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=180)


def _check_schema(doc: dict) -> int:
    """Checks every image and face record; returns how many faces were checked."""
    assert set(doc) == {"model", "labels", "images"}
    assert isinstance(doc["model"], str) and all(isinstance(x, str) for x in doc["labels"])
    for image in doc["images"]:
        assert set(image) == {"path", "error", "faces"}
        assert image["error"] is None or isinstance(image["error"], str)
        for face in image["faces"]:
            assert set(face) == {"box", "score", "top_k"}
            assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
            assert 0.0 <= face["score"] <= 1.0
            assert face["top_k"]
            for entry in face["top_k"]:
                assert set(entry) == {"label", "probability"} and entry["label"] in doc["labels"]
    return sum(len(image["faces"]) for image in doc["images"])


def test_predict_json_schema_and_exit_0():
    result = run_cli("predict", str(ASTRONAUT), str(NO_FACE), "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert _check_schema(doc) == 1  # the astronaut's face; the other image has none
    astro, coffee = doc["images"]
    assert astro["faces"][0]["top_k"][0]["label"] == "happy" and len(astro["faces"][0]["top_k"]) == 2
    assert coffee["faces"] == [] and coffee["error"] is None
    assert result.stderr.strip() == ""  # no native log noise, no teardown traceback


def test_bad_file_one_line_error_others_processed(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_cli("predict", str(bad), str(ASTRONAUT), "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert _check_schema(doc) == 1  # the astronaut's face; the other image has none
    broken, astro = doc["images"]
    assert str(bad) in broken["error"] and "\n" not in broken["error"]
    assert astro["faces"][0]["top_k"][0]["label"] == "happy"
    assert "Traceback" not in result.stderr


def test_table_output():
    result = run_cli("predict", str(ASTRONAUT), str(NO_FACE))
    assert result.returncode == 0
    assert "happy" in result.stdout and "no face found" in result.stdout


@pytest.mark.parametrize(
    "args",
    [("predict",), ("predict", str(ASTRONAUT), "--top-k", "zero"), ("predict", str(ASTRONAUT), "--model", "nope"),
     ("predict", str(ASTRONAUT), "--top-k", "0"), ("frobnicate",)],
)
def test_usage_errors_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--device", "cuda:7"), "CUDA device"),
    (("--device", "tpu"), "unknown device 'tpu'"),
    (("--save-maps", "{blocked}/maps"), "cannot write there"),
])
def test_bad_device_or_output_folder_is_a_usage_error(tmp_path, args, message):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # a folder cannot be made under a file, even as root
    result = run_cli("predict", str(ASTRONAUT), *(a.format(blocked=blocked) for a in args))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "unexpected" not in result.stderr


def test_save_maps(tmp_path):
    result = run_cli("predict", str(ASTRONAUT), "--saliency", "face-prior", "--save-maps", str(tmp_path))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    for kind in ("crop", "input", "saliency", "attention"):
        assert f"astronaut_face0_{kind}.png" in names
    assert "astronaut_annotated.png" in names


# The top level and every command: each names a module whose options need no torch (the heavy
# modules are imported when the command runs).
_LIGHT_HELP = [(), *((name,) for name in COMMANDS)]

_IMPORTS_AFTER_HELP = """
import runpy, sys
sys.argv = ["fer", *ARGS, "--help"]
try:
    runpy.run_module("fer", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("EXIT", code)
print("HEAVY", sorted(m for m in ("torch", "torchvision", "mediapipe", "ai_edge_litert", "gradio") if m in sys.modules))
"""


@pytest.mark.parametrize("command", _LIGHT_HELP, ids=lambda c: " ".join(c) or "top-level")
def test_help_does_not_import_torch(command):
    code = _IMPORTS_AFTER_HELP.replace("ARGS", repr(list(command)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "EXIT 0" and " ".join(["usage: python -m fer", *command]) in result.stdout
    assert lines[-1] == "HEAVY []", lines[-1]
