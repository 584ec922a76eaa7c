"""`fer.config.PipelineConfig`: one record of every pipeline setting, checked on construction, and
`fer.load` built from it (the keyword form is a thin wrapper over it)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from typing import get_args

import numpy as np
import pytest

import fer
from fer.config import DETECTOR_ENGINES, DETECTORS, ENGINES, FIELDS, PipelineConfig
from fer.errors import InputError


def test_defaults_are_what_fer_load_has_always_used() -> None:
    config = PipelineConfig()
    assert (config.model, config.saliency, config.detector, config.margin, config.max_faces, config.min_score,
            config.crop_size, config.engine, config.device, config.second_opinion) == (
        "default", None, "short", None, 10, 0.5, 224, "auto", "cpu", None)
    assert hash(config) == hash(PipelineConfig()) and config == PipelineConfig()


@pytest.mark.parametrize(("changes", "reason"), [
    ({"model": ""}, "model must be a name or a file path"),
    ({"model": 3}, "model must be"),
    ({"saliency": "no-such"}, "unknown saliency predictor"),
    ({"saliency_input": "yes"}, "saliency_input must be True or False or None"),
    ({"attention": 1}, "attention must be True or False"),
    ({"saliency_floor": 1.5}, r"saliency_floor must be in \[0, 1\]"),
    ({"margin": -0.1}, r"margin must be in \[0, 1\]"),
    ({"margin": math.nan}, "margin must be in"),
    ({"margin": "0.2"}, "margin must be a number"),
    ({"min_score": True}, "min_score must be a number"),
    ({"max_faces": 0}, "max_faces must be"),
    ({"max_faces": 2.5}, "whole number"),
    ({"crop_size": 8}, "crop_size must be"),
    ({"detector": "medium"}, "unknown detector 'medium'"),
    ({"detector_engine": "tflite"}, "unknown detector_engine"),
    ({"engine": "onnx"}, "unknown engine"),
    ({"device": "gpu0"}, "unknown device"),
    ({"second_opinion": ""}, "second_opinion must be"),
])
def test_a_bad_setting_is_refused_in_one_line(changes: dict, reason: str) -> None:
    with pytest.raises(InputError, match=reason) as caught:
        PipelineConfig(**changes)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match=reason):  # replace checks again
        PipelineConfig().replace(**changes)


def test_values_are_normalised_so_equal_settings_are_equal_keys() -> None:
    from pathlib import Path

    import torch

    assert PipelineConfig(margin=np.float32(0.25), max_faces=np.int64(3), min_score=1).to_dict() == {
        **PipelineConfig().to_dict(), "margin": 0.25, "max_faces": 3, "min_score": 1.0}
    assert PipelineConfig(device=torch.device("cpu")) == PipelineConfig()
    assert PipelineConfig(model=Path("runs/x/best.json")).model == str(Path("runs/x/best.json"))
    assert type(PipelineConfig(max_faces=4.0).max_faces) is int


def test_to_dict_round_trips_through_json() -> None:
    config = PipelineConfig("ensemble", saliency="spectral-residual", saliency_input=True, margin=0.3, detector="full")
    assert PipelineConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert list(config.to_dict()) == list(FIELDS)
    with pytest.raises(InputError, match="not a pipeline configuration"):
        PipelineConfig.from_dict({"model": "default", "colour": "red"})
    with pytest.raises(InputError, match="not a pipeline setting: colour"):
        config.replace(colour="red")


def test_the_string_choices_are_those_the_detector_and_models_take() -> None:
    from fer.face import DetectorEngine
    from fer.models import Engine
    from fer.weights import DETECTORS as REGISTERED

    assert get_args(DetectorEngine) == DETECTOR_ENGINES and get_args(Engine) == ENGINES
    assert set(DETECTORS) == set(REGISTERED)


def test_building_a_config_loads_no_torch() -> None:
    code = "import sys, fer; fer.PipelineConfig('ensemble', saliency='face-prior'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_from_a_config_equals_load_by_keywords(astronaut: np.ndarray) -> None:
    options = {"saliency": "spectral-residual", "margin": 0.3, "saliency_input": True, "saliency_floor": 0.5,
               "min_score": 0.4, "crop_size": 160, "engine": "torch"}
    config = PipelineConfig("mini_xception_fer2013", **options)
    with fer.load(config) as by_config, fer.load("mini_xception_fer2013", **options) as by_keywords:
        assert by_config.config == by_keywords.config == config
        a, b = by_config(astronaut), by_keywords(astronaut)
        assert a and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.box == y.box and x.crop.shape == (160, 160, 3)
            np.testing.assert_array_equal(x.probabilities, y.probabilities)
            np.testing.assert_array_equal(x.model_input, y.model_input)
        assert by_config.detector.margin == 0.3 and by_config.saliency_floor == 0.5


def test_load_refuses_a_config_with_more_settings_and_unknown_settings() -> None:
    with pytest.raises(InputError, match="not both"):
        fer.load(PipelineConfig(), detector="full")
    with pytest.raises(InputError, match="not a pipeline setting: colour"):
        fer.load("default", colour="red")
    with pytest.raises(InputError, match=r"max_faces must be"):
        fer.load(max_faces=99)


def test_the_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PipelineConfig().model = "ensemble"  # type: ignore[misc]
