"""The Settings tab: the session's model, saliency predictor, CNN input and face options, applied on
every change without a restart. Widget values arrive raw and are checked by
`fer.app.settings.make_settings` against what is offered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from fer.app.settings import (
    MARGIN_RANGE,
    PIPELINES,
    SALIENCY_INPUT_CHOICES,
    TOP_K_RANGE,
    Settings,
    describe,
    make_settings,
    model_choices,
    model_margin,
    saliency_choices,
)
from fer.errors import FerError, InputError
from fer.limits import MAX_FACES
from fer.tracking import MAX_SMOOTHING


def saliency_notes(howto: bool = False) -> str:
    """Markdown: each usable predictor with its description, and which are not available; with
    ``howto`` what they need (the commands and environment variables, for About), else plain words
    pointing there (Settings)."""
    from fer.saliency import SALIENCY_REGISTRY, saliency_status

    lines = []
    for name, status in saliency_status().items():
        if status == "ready":
            lines.append(f"- **{name}**: {SALIENCY_REGISTRY[name].description}")
        else:
            why = status.removeprefix("needs weights: ") if howto else "no weights installed; About says how to add them"
            lines.append(f"- {name} (not available: {why})")
    return "\n".join(lines)


@dataclass
class SettingsTab:
    """The tab's widgets: ``widgets`` in the order `make_settings` takes them."""

    widgets: list[Any]
    status: Any
    model_values: tuple[str, ...]


def build(settings: Any, model: str, extra_models: Sequence[str]) -> SettingsTab:
    """Lay out the tab (inside an open ``gr.Tab``); `bind` wires it once the other tabs exist."""
    defaults: Settings = settings.value
    choices = model_choices([model, *extra_models])
    with gr.Row():
        with gr.Column(min_width=300):
            model_choice = gr.Dropdown(choices, value=model, label="Expression model", elem_id="settings-model")
            saliency_choice = gr.Dropdown(saliency_choices(), value=defaults.saliency,
                                          label="Saliency predictor (where humans would look)",
                                          elem_id="settings-saliency")
            saliency_input = gr.Radio(list(SALIENCY_INPUT_CHOICES), value="model default",
                                      label="Feed the CNN face × saliency (the paper's method)",
                                      info="model default: what the model was trained on (plain crops for the shipped model)",
                                      elem_id="settings-saliency-input")
            detector = gr.Radio([("short range (webcam, portraits)", "short"), ("full range (groups, small faces)", "full")],
                                value=defaults.detector, label="Face detector", elem_id="settings-detector")
        with gr.Column(min_width=300):
            margin = gr.Slider(*MARGIN_RANGE, value=defaults.margin, step=0.05, label="Crop margin per side",
                               elem_id="settings-margin")
            max_faces = gr.Slider(1, MAX_FACES, value=defaults.max_faces, step=1, label="Most faces per image",
                                  elem_id="settings-max-faces")
            top_k = gr.Slider(*TOP_K_RANGE, value=defaults.top_k, step=1, label="Expressions shown per face (k)",
                              elem_id="settings-top-k")
            smoothing = gr.Slider(0.0, MAX_SMOOTHING, value=defaults.smoothing, step=0.05,
                                  label="Smoothing over frames (live and video; 0 = off)", elem_id="settings-smoothing")
    status = gr.Markdown(describe(defaults)[1], elem_id="settings-status")
    gr.Markdown("#### Saliency predictors\n" + saliency_notes(), elem_id="settings-saliency-notes")
    widgets = [model_choice, saliency_choice, saliency_input, margin, max_faces, detector, top_k, smoothing]
    return SettingsTab(widgets, status, tuple(value for _, value in choices))


def apply(tab: SettingsTab, current: Settings, values: Sequence[Any]) -> tuple[Settings, str, Any]:
    """New settings from the widgets' raw ``values``; a model change brings that model's margin.

    Returns:
        ``(settings, status markdown, margin)``: the current settings and the reason when refused;
        ``margin`` is the new margin when the model changed, else None.
    """
    values = list(values)
    new_margin = None
    if values[0] != current.model and values[0] in tab.model_values:
        values[3] = new_margin = model_margin(values[0])
    try:
        new = make_settings(*values, models=tab.model_values)
    except InputError as exc:
        return current, f"⚠️ Settings not applied: {exc}", None
    ok, status = describe(new)
    if not ok:
        return current, status, None
    return new, status, new_margin


def labels_of(settings: Settings) -> tuple[str, ...]:
    """The labels of the model ``settings`` choose (() when it cannot load)."""
    try:
        return PIPELINES.get(settings).labels
    except FerError:
        return ()
