"""The weights resolver: SHA-256 verified, safetensors only, clear errors."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from fer.errors import InputError, WeightsError
from fer.models import ModelSpec, load_model, spec_path_for
from fer.weights import WEIGHTS_DIR, load_state_dict, resolve, sha256_file


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
