"""The package as a user gets it: the wheel built from this tree, installed into a fresh virtual
environment, works from another folder (`fer` command, `fer.load()`, shipped weights as package data).

The fresh environment reuses this environment's installed dependencies through a ``.pth`` file and
the wheel is installed with ``--no-deps``: no network, no second copy of torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import ASTRONAUT, ROOT

#: What the build reads, copied so that build/ and *.egg-info never land in the working tree.
_SOURCES = ("fer", "weights", "assets", "pyproject.toml", "requirements.txt", "README.md", "LICENSE")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("build")
    for name in _SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / "src" / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, root / "src" / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(root / "dist"), str(root / "src")],
                            capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr
    (built,) = (root / "dist").glob("fer_saliency-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; this environment's site-packages on its path."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120)
    python = home / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # This environment's package folders, including any reached through a .pth of its own.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))}
    Path(purelib, "project_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                             str(wheel)], capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr
    return home


def test_the_wheel_carries_every_package_the_weights_and_the_app_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "fer").rglob("__init__.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"pyproject.toml's packages lack {missing}"
    shipped = {p.name for p in (ROOT / "weights").iterdir() if p.suffix in (".json", ".safetensors", ".tflite")}
    assert {f"fer/weights_data/{n}" for n in shipped} <= names
    static = {p.name for p in (ROOT / "fer" / "app" / "static").iterdir() if p.is_file()}
    assert static and {f"fer/app/static/{n}" for n in static} <= names
    assets = {p.name for p in (ROOT / "assets").iterdir() if p.is_file()}
    assert "astronaut-clip.mp4" in assets and {f"fer/assets_data/{n}" for n in assets} <= names


def test_fer_predict_from_another_folder(venv, tmp_path):
    picture = shutil.copy(ASTRONAUT, tmp_path / "face.png")
    result = subprocess.run([str(venv / "bin" / "fer"), "predict", "face.png", "--json"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=180, env=_env())
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["images"][0]["path"] == "face.png" and Path(picture).is_file()
    assert doc["images"][0]["faces"][0]["top_k"][0]["label"] == "happy"


def test_fer_load_from_another_folder_uses_the_installed_package(venv, tmp_path):
    code = ("import fer, fer.weights\n"
            "pipe = fer.load()\n"
            f"print(fer.__file__, fer.weights.WEIGHTS_DIR, pipe({str(ASTRONAUT)!r})[0].label, sep='\\n')\n"
            "pipe.close()\n")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=180, env=_env())
    assert result.returncode == 0, result.stderr
    module, weights, label = result.stdout.strip().splitlines()[-3:]
    assert Path(module).is_relative_to(venv) and Path(weights) == Path(module).parent / "weights_data"
    assert label == "happy"


def test_the_examples_and_the_bench_frames_come_from_the_installed_package(venv, tmp_path):
    """No checkout needed: the app's example files and `fer bench`'s frames are package data."""
    code = ("import fer.assets, fer.app.image as image, fer.app.video as video\n"
            "from fer.bench.frames import FRAMES, compose_frame\n"
            "print(fer.assets.ASSETS_DIR)\n"
            "print(all(p.is_file() for p in [*image.EXAMPLES.values(), video.EXAMPLE]))\n"
            "print([compose_frame(name).shape for name in FRAMES])\n")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=180, env=_env())
    assert result.returncode == 0, result.stderr
    folder, every, shapes = result.stdout.strip().splitlines()[-3:]
    assert Path(folder).is_relative_to(venv) and Path(folder).name == "assets_data"
    assert every == "True" and shapes == "[(480, 640, 3), (480, 640, 3)]"
