"""`fer.app.settings` and the Settings tab: widget values are checked against what is offered (a
client cannot name a file as its model), pipelines are shared and loaded once."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fer.app import settings_tab
from fer.app.about import about_markdown
from fer.app.settings import PipelineCache, Settings, default_settings, describe, make_settings, model_choices
from fer.app.settings_tab import saliency_notes
from fer.config import PipelineConfig
from fer.errors import InputError

MODELS = ("mini_xception_fer2013", "face_api_expression", "ensemble")


def test_offered_values_make_settings() -> None:
    full = make_settings("mini_xception_fer2013", "spectral-residual", "on", 0.3, 5, "full", 4, 0.2, models=MODELS)
    assert full == Settings(model="mini_xception_fer2013", saliency="spectral-residual", saliency_input=True,
                            margin=0.3, max_faces=5, detector="full", top_k=4, smoothing=0.2,
                            second_opinion="face_api_expression")
    assert full.config == PipelineConfig("mini_xception_fer2013", "spectral-residual", True, margin=0.3, max_faces=5,
                                         detector="full", second_opinion="face_api_expression")
    assert make_settings("ensemble", "face-prior", "model default", models=MODELS).saliency_input is None
    assert make_settings("mini_xception_fer2013", "face-prior", "off", "0.25", "3", models=MODELS).max_faces == 3


@pytest.mark.parametrize(("values", "reason"), [
    (("/etc/passwd", "face-prior"), "offered models"),
    (("../weights/mini_xception_fer2013.json", "face-prior"), "offered models"),
    ((None, "face-prior"), "offered models"),
    (("mini_xception_fer2013", "no-such-predictor"), "saliency predictors"),
    (("mini_xception_fer2013", "face-prior", "yes"), "saliency input"),
    (("mini_xception_fer2013", "face-prior", None, "abc"), "margin must be a number"),
    (("mini_xception_fer2013", "face-prior", None, math.nan), "margin must be between"),
    (("mini_xception_fer2013", "face-prior", None, 0.9), "margin must be between"),
    (("mini_xception_fer2013", "face-prior", None, 0.2, 0), "most faces"),
    (("mini_xception_fer2013", "face-prior", None, 0.2, 2.5), "whole number"),
    (("mini_xception_fer2013", "face-prior", None, 0.2, 5, "medium"), "detector"),
    (("mini_xception_fer2013", "face-prior", None, 0.2, 5, "short", 99), "top-k"),
    (("mini_xception_fer2013", "face-prior", None, 0.2, 5, "short", 3, math.inf), "smoothing"),
])
def test_values_not_offered_are_refused(values: tuple, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        make_settings(*values, models=MODELS)


def test_pipelines_are_shared_and_evicted() -> None:
    loads: list[PipelineConfig] = []

    def loader(config: PipelineConfig) -> object:
        loads.append(config)
        return object()

    cache = PipelineCache(size=1, loader=loader)
    plain = default_settings("mini_xception_fer2013")
    first = cache.get(plain)
    assert cache.get(Settings(**{**plain.__dict__, "top_k": 5})) is first  # top-k does not change the pipeline
    other = cache.get(Settings(**{**plain.__dict__, "detector": "full"}))
    assert other is not first and cache.get(plain) is not first and len(loads) == 3
    assert all(type(config) is PipelineConfig for config in loads)  # keyed and loaded by the config alone
    assert cache.get(plain.config) is cache.get(plain)  # a bare config finds the same pipeline


def test_describe_warns_when_the_cnn_gets_saliency_it_was_not_trained_on() -> None:
    ok, plain = describe(default_settings("mini_xception_fer2013"))
    assert ok and "the plain face crop" in plain and "⚠️" not in plain
    product = Settings(**{**default_settings("mini_xception_fer2013").__dict__, "saliency_input": True})
    ok, warned = describe(product)
    assert ok and "face × face-prior saliency" in warned and "trained on plain crops" in warned
    # Settings says plain words: the model's shown name, no command or environment variable (About has them).
    assert "mini-Xception (trained on FER2013)" in plain and "About says how to train one" in warned
    for text in (plain, warned, saliency_notes()):
        assert "`" not in text and "python -m" not in text and "FER_" not in text, text
    about = about_markdown(product)
    assert "python -m fer train --saliency" in about and "python -m fer train-saliency" in about


def test_settings_name_what_is_missing_and_about_says_how() -> None:
    assert "mlnet (not available: no weights installed; About says how to add them)" in saliency_notes()
    assert "FER_MLNET_WEIGHTS" in saliency_notes(howto=True)


def test_model_choices_list_registered_models_ensembles_and_local_runs(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "rafd-alexnet"
    run.mkdir(parents=True)
    (run / "best.json").write_text("{}")
    (run / "best.safetensors").write_bytes(b"")
    choices = model_choices(runs=tmp_path / "runs")
    assert [value for _, value in choices] == ["face_api_expression", "mini_xception_fer2013", "ensemble",
                                               str(run / "best.json")]
    # Names a visitor understands: what each network is and what it learnt from.
    assert [shown for shown, _ in choices][:3] == ["face-api (trained on web images)",
                                                   "mini-Xception (trained on FER2013)",
                                                   "both, averaged (ensemble of the two)"]


def test_the_settings_tab_refuses_and_keeps_the_current_settings() -> None:
    current = default_settings("mini_xception_fer2013")
    tab = settings_tab.SettingsTab(widgets=[], status=None, model_values=MODELS)
    values = ["/etc/passwd", "face-prior", "model default", 0.2, 10, "short", 3, 0.6]
    kept, status, margin = settings_tab.apply(tab, current, values)
    assert kept is current and status.startswith("⚠️ Settings not applied") and margin is None
    values[0] = "face_api_expression"  # a new model brings its own crop margin
    new, status, margin = settings_tab.apply(tab, current, values)
    assert new.model == "face_api_expression" and margin == 0.0 and new.margin == 0.0
    assert "face-api (trained on web images)" in status  # the name a visitor reads
