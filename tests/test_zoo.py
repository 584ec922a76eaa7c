"""`fer.zoo`: one record per loadable thing (detectors, expression networks, ensembles, saliency
predictors), each loadable; `fer.models` is one network and never imports the ensemble module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fer
from fer import zoo
from fer.errors import InputError
from fer.saliency import SALIENCY_REGISTRY, load_saliency, saliency_status
from fer.weights import REGISTRY, WEIGHTS_DIR


def test_every_registered_thing_has_one_entry() -> None:
    names = [e.name for e in zoo.entries()]
    assert len(names) == len(set(names)) and set(names) == set(REGISTRY) | set(SALIENCY_REGISTRY)
    assert {e.kind for e in zoo.entries()} == {"detector", "expression", "ensemble", "saliency"}
    assert all(e.description and e.licence and e.input for e in zoo.entries())


def test_a_networks_entry_is_read_from_its_spec() -> None:
    spec = json.loads((WEIGHTS_DIR / "mini_xception_fer2013.json").read_text())
    entry = zoo.entry("default")
    assert (entry.name, entry.kind, entry.licence, entry.weights) == (
        "mini_xception_fer2013", "expression", spec["licence"], spec["weights"])
    assert entry.input == "64×64 grey, aligned crop, the pipeline's margin (0.2)"
    assert zoo.entry("face_api_expression").input == "112×112 rgb, box crop, margin 0"
    ensemble = zoo.entry("ensemble")
    assert ensemble.members == ("mini_xception_fer2013", "face_api_expression") and ensemble.licence == "its members': MIT"
    assert zoo.entry("blazeface_short").input == "any RGB image, letterboxed to 128×128"
    assert zoo.entry("face-prior").weights == "" and "MIT" in zoo.entry("face-prior").licence
    with pytest.raises(InputError, match="nothing named 'nope' in the zoo"):
        zoo.entry("nope")


def test_available_models_keeps_its_names_and_can_give_entries() -> None:
    names = fer.available_models()
    assert names[0] == "default" and {"mini_xception_fer2013", "face_api_expression", "ensemble"} <= set(names)
    entries = fer.available_models(entries=True)
    assert [e.name for e in entries] == names[1:] and {e.kind for e in entries} == {"expression", "ensemble"}


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_every_entry_loads(entry: zoo.ZooEntry) -> None:
    """Each record names something that loads (the contract test over the whole zoo)."""
    if entry.kind in ("expression", "ensemble"):
        model = zoo.load_model(entry.name, engine="torch")
        assert model.spec.name == entry.name
    elif entry.kind == "detector":
        from fer.face import FaceDetector
        from fer.weights import DETECTORS

        (short,) = [k for k, v in DETECTORS.items() if v == entry.name]
        with FaceDetector(short) as detector:  # type: ignore[arg-type]
            assert detector.model == short
    elif saliency_status()[entry.name] == "ready":
        assert load_saliency(entry.name).name == entry.name
    else:  # ML-Net without trained weights here: its entry says how to get them
        assert entry.name == "mlnet" and "needs weights" in saliency_status()["mlnet"]


def test_a_detector_is_not_an_expression_model() -> None:
    with pytest.raises(InputError, match="'blazeface_short' is a registered detector"):
        zoo.load_model("blazeface_short")


def test_models_is_one_network_and_imports_no_ensemble() -> None:
    code = ("import sys; import fer.zoo as z; z.entries(); assert 'torch' not in sys.modules; "
            "from fer.models import load_network; load_network('default', engine='torch'); "
            "print('fer.ensemble' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
