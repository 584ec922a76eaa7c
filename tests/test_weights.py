"""The weights registry and resolver: every entry found or explained, SHA-256 verified, safetensors only,
clear errors, offline-aware; the cache folder helper."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from fer.cache import cache_dir
from fer.errors import InputError, WeightsError
from fer.models import ENSEMBLES, PRETRAINED, ModelSpec, spec_path_for
from fer.weights import (
    DETECTORS,
    REGISTRY,
    WEIGHTS_DIR,
    load_state_dict,
    local_spec,
    names,
    registered,
    resolve,
    resolve_registered,
    sha256_file,
    spec_file,
)
from fer.zoo import load_model

from .conftest import ROOT


def test_shipped_model_verifies():
    spec = ModelSpec.load(spec_path_for("default"))
    path = resolve(spec.weights, spec.sha256)
    assert path.parent == WEIGHTS_DIR and sha256_file(path) == spec.sha256


def test_wrong_hash_refused_with_names(tmp_path):
    src = WEIGHTS_DIR / "mini_xception_fer2013.safetensors"
    copy = tmp_path / src.name
    shutil.copy(src, copy)
    wrong = "0" * 64
    with pytest.raises(WeightsError) as err:
        resolve(str(copy), wrong)
    message = str(err.value)
    assert str(copy) in message and wrong in message and "\n" not in message


def test_tampered_checkpoint_refused(tmp_path):
    spec_file = spec_path_for("default")
    for name in (spec_file.name, "mini_xception_fer2013.safetensors"):
        shutil.copy(spec_file.parent / name, tmp_path / name)
    weights = tmp_path / "mini_xception_fer2013.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # flip bits in one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        load_model(tmp_path / spec_file.name)
    weights.write_bytes(bytes(data[:1000]))  # truncated
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        load_model(tmp_path / spec_file.name)


def test_pickle_refused(tmp_path):
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(WeightsError, match="only .safetensors"):
        load_state_dict(evil, sha256_file(evil))
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    with pytest.raises(WeightsError, match="only .safetensors"):
        load_state_dict(disguised, sha256_file(disguised))


def test_valid_safetensors_round_trip(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.arange(4.0)}, str(path))
    state = load_state_dict(path, sha256_file(path))
    assert torch.equal(state["w"], torch.arange(4.0))


def test_missing_file_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        resolve("nowhere.safetensors", "ab" * 32, hf_repo="someone/some-repo")
    message = str(err.value)
    assert "nowhere.safetensors" in message and "ab" * 32 in message and "someone/some-repo" in message


def test_unknown_model_name():
    with pytest.raises(InputError, match="unknown model"):
        load_model("no-such-model")


def test_spec_round_trip(tmp_path):
    spec = ModelSpec.load(spec_path_for("default"))
    again = ModelSpec.load(spec.save(tmp_path / "s.json"))
    assert again == spec
    with pytest.raises(WeightsError, match="unknown keys"):
        ModelSpec.from_dict({**spec.to_dict(), "colr": "grey"})


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_entry_resolves_or_says_how_to_get_it(name):
    entry = registered(name)
    if entry.kind == "detector":
        path = resolve_registered(name)
        assert sha256_file(path) == entry.sha256 and entry.spec in DETECTORS
    elif entry.kind == "ensemble":
        assert entry.members and all(registered(m).kind == "expression" for m in entry.members)
    elif entry.kind == "expression":
        spec = ModelSpec.load(spec_file(name))
        assert spec.name == name and sha256_file(resolve(spec.weights, spec.sha256)) == spec.sha256
    else:  # ML-Net: no trained weights are shipped
        assert local_spec(name) is None
        with pytest.raises(WeightsError) as err:
            spec_file(name)
        assert entry.spec in str(err.value) and "train-saliency" in str(err.value)


def test_views_of_the_registry():
    assert sorted(PRETRAINED) == sorted(names("expression")) and sorted(ENSEMBLES) == sorted(names("ensemble"))
    assert {registered(DETECTORS[d]).kind for d in DETECTORS} == {"detector"}
    assert registered("default") == registered("mini_xception_fer2013")
    with pytest.raises(InputError, match="known: default"):
        registered("nope")


def test_a_registered_models_missing_weights_name_the_file_hash_and_how_to_get_them(monkeypatch, tmp_path):
    spec = ModelSpec.load(spec_path_for("default"))
    shutil.copy(spec_path_for("default"), tmp_path / spec_path_for("default").name)
    monkeypatch.setattr("fer.weights.WEIGHTS_DIR", tmp_path)  # the spec shipped, its weights not
    monkeypatch.delenv("FER_HF_REPO", raising=False)
    with pytest.raises(WeightsError) as err:
        load_model("default")
    message = str(err.value)
    assert spec.weights in message and spec.sha256 in message and "convert_mini_xception.py" in message
    assert "\n" not in message


def test_the_hub_repo_is_read_at_call_time_and_offline_is_honoured(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FER_HF_REPO", "someone/set-later")
    with pytest.raises(WeightsError) as err:
        resolve("nowhere.safetensors", "cd" * 32)
    assert "someone/set-later" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_importing_the_registry_imports_no_torch():
    code = "import sys, fer.weights, fer.cache; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


# --------------------------------------------------------------------------- the cache folder


def test_cache_dir_is_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    assert cache_dir("onnx") == tmp_path / "onnx" and cache_dir("crops") == tmp_path / "crops"
    for off in ("off", "0", "no", "false", ""):
        monkeypatch.setenv("FER_CACHE_DIR", off)
        assert cache_dir("onnx") is None and cache_dir("crops") is None
    monkeypatch.delenv("FER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("crops") == tmp_path / "xdg" / "fer" / "crops"
