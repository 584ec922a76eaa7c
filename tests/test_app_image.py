"""`fer.app.image`: one picture → every face with its views; what the session keeps for a face pick
or a settings change; what ``/predict`` answers."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from fer.app import faces as face_table
from fer.app import image
from fer.app.sessions import MEMORY
from fer.app.settings import Settings, default_settings
from fer.app.uploads import REFUSED

from .conftest import ASTRONAUT, NO_FACE


@pytest.fixture(scope="module")
def settings() -> Settings:
    return default_settings("mini_xception_fer2013")


def test_astronaut_is_happy_with_every_view(settings: Settings) -> None:
    analysis = image.analyse(ASTRONAUT.read_bytes(), settings, "me.png")
    assert analysis.ok and len(analysis.predictions) == 1 and analysis.message == "1 face: **happy** 99%."
    assert analysis.shown.shape == (512, 512, 3) and analysis.captions() == ["#1 happy 99%"]
    data = analysis.to_json()
    assert data["faces"][0]["label"] == "happy" and data["faces"][0]["face"] == 1 and len(data["faces"][0]["box"]) == 4
    assert list(analysis.top_k(0)) == ["happy", "surprise", "neutral"] and analysis.top_k(5) == {}
    values = image.all_outputs(analysis, None, None)
    shown, status, faces, *panels, top_k, opinion, confusion, json = values
    assert shown["value"] is analysis.shown and status == analysis.message and json == data
    assert shown["alt_text"] == "Your picture with 1 face boxed and numbered, left to right: #1 happy 99%."
    assert faces["visible"] is False and faces["value"] == ""  # one face: no face table
    assert all('src="data:image/jpeg;base64,' in p for p in panels) and list(top_k)[0] == "happy"
    assert "about 66 %" in confusion and "not measured by us" in confusion  # the card, before any Evaluate run
    # The other network (face-api, trained on other data) gives its opinion beside the top-k.
    assert "Second opinion" in opinion and "face-api (trained on other data): <b>happy</b>" in opinion
    assert "agrees" in opinion and "Over this session" not in opinion  # one picture: no session rate


def test_several_faces_offer_a_table_in_reading_order(settings: Settings) -> None:
    analysis = image.analyse(image.EXAMPLES["collage (five faces)"].read_bytes(), settings)
    assert len(analysis.predictions) == 5 and analysis.message.startswith("5 faces; showing #1")
    _, _, faces, *_ = image.all_outputs(analysis, None, None)
    table = faces["value"]
    assert faces["visible"] and table.startswith('<table class="fer-faces"><caption>')
    # One row per face, left to right by box; each row a button with the face's thumbnail.
    rows = [int(i) for i in re.findall(r'<tr data-face="(\d)"', table)]
    lefts = [analysis.predictions[i].box[0] for i in rows]
    assert sorted(rows) == [0, 1, 2, 3, 4] and lefts == sorted(lefts)
    assert rows == face_table.reading_order(analysis.predictions)
    assert table.count('<button type="button" class="fer-face-pick"') == 5
    assert table.count('class="fer-face-thumb" src="data:image/jpeg;base64,') == 5
    assert table.count('aria-current="true"') == 1 and '<tr data-face="0" aria-current="true">' in table
    for i, pred in enumerate(analysis.predictions):  # top-1 with its probability, and the second opinion
        label, p = pred.top_k(1)[0]
        row = table.split(f'<tr data-face="{i}"')[1].split("</tr>")[0]
        assert f"<td><b>{label}</b> {p:.0%}</td>" in row and "face-api: " in row, row
        first, second = list(pred.members)  # the main network, then the other
        agrees = pred.member_top1(first)[0] == pred.member_top1(second)[0]
        assert (", agrees" if agrees else ", disagrees") in row, row
    assert analysis.alt_text().startswith("Your picture with 5 faces boxed and numbered, left to right: #")
    # A click names its face; anything a client may send instead is clamped or ignored.
    assert [face_table.picked_index(gr.EventData(None, d), 5) for d in
            ({"face": 3}, {"face": 9}, {"face": -2}, {"face": "2"}, {"face": True}, None, {"face": float("nan")})] \
        == [3, 4, 0, 0, 0, 0, 0]
    second = image.face_outputs(analysis, 2, None, None)
    assert second[:3] != image.face_outputs(analysis, 0, None, None)[:3]
    assert image.face_outputs(analysis, 99, None, None) == image.face_outputs(analysis, 0, None, None)


def test_no_face_and_refusals_are_one_line_messages(settings: Settings, tmp_path: Path) -> None:
    none = image.analyse(NO_FACE.read_bytes(), settings, "coffee.png")
    assert none.ok and none.predictions == [] and none.message == image.NO_FACE_MESSAGE
    broken = image.analyse(b"not a picture", settings, "holiday.png")
    assert not broken.ok and broken.message.startswith("holiday.png: unsupported image format") and broken.shown is None
    assert image.all_outputs(broken, None, None)[1].startswith("⚠️ holiday.png")
    _, _, refused = image.from_widget({"path": str(ASTRONAUT)}, settings)
    assert refused.message == REFUSED and str(ASTRONAUT.parent) not in refused.message
    assert image.from_widget(None, settings) == (None, "", None)


def test_the_session_keeps_the_picture_for_a_pick_or_a_redo(settings: Settings) -> None:
    data = ASTRONAUT.read_bytes()
    analysis = image.analyse(data, settings, "me.png")
    image.remember("session-a", data, "me.png", analysis)
    kept = MEMORY.get("session-a", image.KIND)
    assert kept.data == data and kept.name == "me.png" and kept.extra is analysis
    assert kept.size >= len(data) + analysis.predictions[0].crop.nbytes
    other = dataclasses.replace(settings, saliency="spectral-residual")
    redone = image.redo("session-a", other, None, None)
    assert redone[-1]["saliency"] == "spectral-residual" and redone[-1]["faces"][0]["label"] == "happy"
    assert MEMORY.get("session-a", image.KIND).extra.settings == other
    assert image.redo("no-such-session", other, None, None) is None and image.redo(None, other, None, None) is None
    image.remember("session-a", b"x", "bad.png", image.analyse(b"x", settings))  # a refused picture forgets the old
    assert MEMORY.get("session-a", image.KIND) is None


def test_decoded_pictures_are_analysed_too(settings: Settings, astronaut: np.ndarray) -> None:
    assert image.analyse(astronaut, settings).predictions[0].label == "happy"
