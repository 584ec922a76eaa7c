"""The app's access details (issue 22 items 6 and 10), read from the built app without a browser:
every picture and plot the app draws says what it shows, and the Image tab's face table is one
private event that picks one face at a time."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from fer.app import charts
from fer.app.server import build_app


@pytest.fixture(scope="module")
def demo() -> gr.Blocks:
    return build_app()


def test_the_face_table_is_one_private_event_picking_one_face_at_a_time(demo: gr.Blocks) -> None:
    faces = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "image-faces")
    assert isinstance(faces, gr.HTML)
    picks = [f for f in demo.fns.values() if any(target[0] == faces._id for target in f.targets)]
    assert [(f.name, f.api_visibility, f.concurrency_id, f.concurrency_limit) for f in picks] == \
        [("on_face", "private", "face-pick", 1)]
    # The dropdown and the gallery it replaces are gone.
    assert not [b for b in demo.blocks.values() if isinstance(b, (gr.Gallery, gr.Dropdown))
                and (getattr(b, "elem_id", None) or "").startswith("image-")]


def test_plots_say_what_they_show(demo: gr.Blocks) -> None:
    plot = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "evaluate-plot")
    assert plot.alt_text and plot.alt_text.startswith("Confusion matrix plot: rows the true expression")
    svg = charts.timeline_svg(np.array([0.0, 1.0]), np.full((2, 2), 0.5), ["happy", "sad"], "Face 1 over time")
    assert '<svg class="fer-timeline-svg"' in svg and 'role="img" aria-label="Face 1 over time"' in svg
