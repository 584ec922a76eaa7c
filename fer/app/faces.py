"""The Image tab's face table: with several faces, one row per face in reading order (left to right
by box), each with its thumbnail, top-1 and its probability, and the second opinion; a row is a
button, so a click, a tap or Enter/Space on it shows that face in the result block.

The table is plain HTML (``#image-faces``): ``<table class="fer-faces">`` with a ``<caption>``, a
header row and per face ``<tr data-face="i">`` (``i`` the face's index in the analysis, its number
``#i+1`` drawn on the picture) whose first cell holds ``<button class="fer-face-pick">``; the row
shown carries ``aria-current="true"``. `PICK_JS` turns a click into the component's ``click`` event
with ``{"face": i}``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from fer.app.media import data_url, fit_image
from fer.app.views import network_name

if TYPE_CHECKING:
    from fer.pipeline import Prediction

#: Thumbnail's longest side in pixels (shown at 48 CSS px; twice that for sharp screens).
THUMB_SIDE = 96

#: Page script of the table (Gradio's ``js_on_load``): one listener on the component, which stays
#: while the table inside is redrawn. The row is marked at once, so a keyboard user keeps focus and
#: sees the choice before the server answers.
PICK_JS = """
element.addEventListener('click', (event) => {
  const row = event.target.closest('tr[data-face]');
  if (!row) return;
  row.closest('table').querySelectorAll('tr[data-face]').forEach((r) => r.removeAttribute('aria-current'));
  row.setAttribute('aria-current', 'true');
  trigger('click', {face: Number(row.dataset.face)});
});
"""


def reading_order(predictions: list[Prediction]) -> list[int]:
    """Indices of ``predictions`` left to right by box (then top to bottom)."""
    return sorted(range(len(predictions)), key=lambda i: (predictions[i].box[0], predictions[i].box[1]))


def opinion_text(pred: Prediction, main: str, ensemble: bool = False) -> str:
    """The second opinion in a few words (HTML): the other network's top-1 and whether it agrees;
    for an ``ensemble`` both members' top-1."""
    from fer.tracking import opinion_pair

    pair = opinion_pair(list(pred.members), main)
    if pair is None:
        return "none"
    (a, pa), (b, pb) = pred.member_top1(pair[0]), pred.member_top1(pair[1])
    if ensemble:
        return (f"{escape(network_name(pair[0]))}: {escape(a)} {pa:.0%} · "
                f"{escape(network_name(pair[1]))}: {escape(b)} {pb:.0%}")
    verdict = "agrees" if a == b else "disagrees"
    return f"{escape(network_name(pair[1]))}: {escape(b)} {pb:.0%}, {verdict}"


def table_html(predictions: list[Prediction], main: str, shown: int = 0, ensemble: bool = False) -> str:
    """The face table for two faces or more (``""`` for fewer: nothing to pick); ``shown`` is the
    index of the face the result block shows."""
    if len(predictions) < 2:
        return ""
    rows = []
    for index in reading_order(predictions):
        pred = predictions[index]
        label, probability = pred.top_k(1)[0]
        number = f"#{index + 1}"
        thumb = (f'<img class="fer-face-thumb" src="{data_url(fit_image(pred.crop, THUMB_SIDE))}" alt="">'
                 if pred.crop is not None else "")
        current = ' aria-current="true"' if index == shown else ""
        rows.append(
            f'<tr data-face="{index}"{current}>'
            f'<th scope="row"><button type="button" class="fer-face-pick" '
            f'aria-label="Show face {number}: {escape(label)} {probability:.0%}">{thumb}'
            f'<span class="fer-face-number">{number}</span></button></th>'
            f'<td><b>{escape(label)}</b> {probability:.0%}</td>'
            f'<td>{opinion_text(pred, main, ensemble)}</td></tr>')
    return ('<table class="fer-faces"><caption>Faces, left to right: choose one to see its views</caption>'
            '<thead><tr><th scope="col">Face</th><th scope="col">Expression</th>'
            '<th scope="col">Second opinion</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def picked_index(event: Any, count: int) -> int:
    """The face index a table click names (``{"face": i}``), clamped to ``[0, count)``; 0 for
    anything else (a client may send any value)."""
    data = getattr(event, "_data", None)
    value = data.get("face") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return min(max(int(value), 0), max(count - 1, 0))
