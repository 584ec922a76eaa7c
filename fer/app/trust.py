""""How far to trust the answer": the panel beside every answer on the Image and Live tabs.

It quotes, each with where it comes from and what it is not:

1. the best published figure the model card cites (`fer.models.ModelSpec.published`), with its
   source, n and a 95 % Wilson interval, never as measured by us, while the network runs as it was
   trained (`fer.Pipeline.runs_as_trained`); or that nothing is published, and then what is
   measured instead (how often the two networks agree);
2. a measured figure (the card's own evaluation, or this session's Evaluate run of the model), with
   n, a 95 % interval and its label coverage ("over 4 of 7 expressions"), and, from its column for
   the answer shown, what the truth was when the model gave that answer;
3. the visitor's own posed counts from Live, labelled as a personal check, beside the others and
   never in their place.

HTML only (numbers and escaped text), so the page script of an on-device Live can fill the same
``#T-confusion`` panel from the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from fer import metrics

if TYPE_CHECKING:
    from fer.app.views import Measured
    from fer.models import ModelSpec
    from fer.pipeline import Pipeline
    from fer.tracking import Agreement, SessionConfusion

TITLE = '<h3 class="fer-title">How far to trust the answer</h3>'


def percent(value: float) -> str:
    """``0.6612`` → ``"66 %"``."""
    return f"{100 * value:.0f} %"


def interval(successes: int, n: int) -> str:
    """``"95 % interval 64–68 %"`` (Wilson) for ``successes`` of ``n``."""
    low, high = metrics.wilson_interval(successes, n)
    return f"95 % interval {100 * low:.0f}–{100 * high:.0f} %"


def coverage(confusion: np.ndarray, labels: Sequence[str], of: int) -> str:
    """``"over 4 of 7 expressions"``: the true labels with at least one sample, of the model's ``of``."""
    seen = int((metrics.support(confusion) > 0).sum())
    names = ", ".join(label for label, n in zip(labels, metrics.support(confusion), strict=True) if n)
    return f"over {seen} of {of} expressions ({escape(names)})"


def rate_line(what: str, confusion: np.ndarray, labels: Sequence[str], of: int) -> str:
    """One measured figure: ``what``, accuracy, n, interval and label coverage (HTML)."""
    n = int(confusion.sum())
    right = int(np.trace(confusion))
    return (f"{what}: <b>{percent(right / n)}</b> right on n = {n:,} ({interval(right, n)}), "
            f"{coverage(confusion, labels, of)}.")


# --------------------------------------------------------------------------- published figures


def published_line(spec: ModelSpec, name: str) -> str:
    """What the model card of ``spec`` cites as published (HTML), or that nothing is."""
    cited: Mapping[str, Any] = spec.published or {}
    if "accuracy" not in cited:
        why = cited.get("none", "its card cites no published evaluation")
        return f"<p><b>{escape(name)}: no accuracy is published</b>: {escape(why)}. Not measured by us either.</p>"
    accuracy, n = float(cited["accuracy"]), int(cited["n"])
    counted = f"n = {n:,}, {escape(cited['n_note'])}" if cited.get("n_note") else f"n = {n:,}"
    text = (f"<p><b>{escape(name)}: about {percent(accuracy)}</b> right on {escape(cited['dataset'])}'s "
            f"{escape(cited.get('split', 'test data'))} ({counted}; {interval(round(accuracy * n), n)}), "
            f"as its authors report ({escape(cited['source'])}): published, not measured by us.</p>")
    if cited.get("reference"):
        text += f"<p>For scale: {escape(cited['reference'])}.</p>"
    if cited.get("unlike"):
        text += f"<p>What it is not: {escape(cited['unlike'])}.</p>"
    return text


def agreement_line(agreement: Agreement | None, where: str) -> str:
    """How often the two networks agreed over ``where`` (HTML), with n and interval; "" before any."""
    from fer.app.views import network_name

    if agreement is None or not agreement.total:
        return ""
    n = agreement.total
    same = int(np.trace(agreement.counts))
    first, second = escape(network_name(agreement.first)), escape(network_name(agreement.second))
    return (f"<p>Measured instead: {first} and {second} agree on <b>{same} of {n}</b> faces {escape(where)} "
            f"({interval(same, n)}). Agreement is not accuracy: two networks can agree and both be wrong.</p>")


# --------------------------------------------------------------------------- the panel


def answer_bars(confusion: np.ndarray, labels: Sequence[str], label: str | None, whose: str) -> str:
    """From the matrix's column for ``label``: what the truth was when the model said it (HTML)."""
    if label is None:
        return ""
    if label not in labels:
        return f"<p>That measurement has no <b>{escape(label)}</b> class, so this answer was never scored.</p>"
    column = np.asarray(confusion)[:, list(labels).index(label)]
    said = int(column.sum())
    if said == 0:
        return f"<p>In {escape(whose)} it never answered <b>{escape(label)}</b>.</p>"
    order = [i for i in np.argsort(-column, kind="stable") if column[i] > 0][:4]
    bars = "".join(
        f'<div class="fer-bar-row"><span class="fer-bar-label">{escape(labels[i])}</span>'
        f'<span class="fer-bar"><span style="width:{100 * column[i] / said:.0f}%"></span></span>'
        f'<span class="fer-bar-value">{column[i] / said:.0%}</span></div>'
        for i in order
    )
    return (f"<p>When it says <b>{escape(label)}</b>, it was really (of {said}, {escape(whose)}):</p>{bars}")


def trust_html(pipe: Pipeline, label: str | None, measured: Measured | None = None,
               live: SessionConfusion | None = None, agreement: Agreement | None = None,
               agreement_where: str = "on this picture") -> str:
    """The whole panel for the answer ``label`` (None: no face yet) of ``pipe``'s model.

    Args:
        measured: the card's evaluation or this session's Evaluate run (`fer.app.views.measured_for`).
        live: the visitor's posed counts in Live, shown as a personal check when any were counted.
        agreement: the two networks' agreement, shown when no figure is published for the model.
    """
    from fer.app.views import network_name
    from fer.ensemble import Ensemble

    of = len(pipe.labels)
    parts = [TITLE]
    if isinstance(pipe.model, Ensemble):
        parts.append("<p>The ensemble averages two networks; nothing is published for the average. "
                     "Its members' cards:</p>")
        specs = [m.spec for m in pipe.model.members]
    else:
        specs = [pipe.spec]
    cited = False
    if not pipe.runs_as_trained:
        # A published figure measured the network fed as it was trained; these settings feed it otherwise.
        parts.append(f"<p><b>No published figure applies</b>: Settings feed {escape(network_name(pipe.main.spec.name))} "
                     "otherwise than it was trained (crop margin or saliency input), and its card's figures "
                     "measured it as trained.</p>")
        specs = []
    for spec in specs:
        parts.append(published_line(spec, network_name(spec.name)))
        cited = cited or bool(spec.published and "accuracy" in spec.published)
    if not cited or isinstance(pipe.model, Ensemble):
        parts.append(agreement_line(agreement, agreement_where))
    if measured is not None and measured.n:
        source = measured.source[:1].upper() + measured.source[1:]
        parts.append(f"<p>{rate_line(escape(source), measured.confusion, measured.labels, of)}</p>")
        parts.append(answer_bars(measured.confusion, measured.labels, label, "that measurement"))
    if live is not None and live.total:
        parts.append(f"<p>{rate_line('Your personal check (Live, posing: one person, one camera)', live.counts, live.labels, of)}</p>")
        if measured is None:
            parts.append(answer_bars(live.counts, live.labels, label, "your posed frames"))
    if measured is None and (live is None or not live.total):
        parts.append("<p>Per expression: not measured by us. Measure it in <b>Evaluate</b> (your labelled faces) "
                     "or in <b>Live</b> (<i>I'm posing</i>).</p>")
    return f'<div class="fer-confusion">{"".join(p for p in parts if p)}</div>'
