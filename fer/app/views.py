"""The result block the Image and Live tabs share: per face, where humans would look, what the CNN
sees, where it looked, the top-k, and how far to trust the answer (confusion statistics).

Pictures are inline HTML with their titles outside the picture, so a title never covers a heatmap
and no picture is ever a file on the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from fer import metrics
from fer.app.media import image_html

if TYPE_CHECKING:
    from fer.config import PipelineConfig
    from fer.pipeline import Pipeline, Prediction
    from fer.tracking import Agreement, SessionConfusion

#: Panel titles (short, so they fit a phone) and what each panel shows before there is a face.
TITLES = {"saliency": "Where humans would look", "model_input": "What the CNN sees",
          "attention": "Where the CNN looked"}
EMPTY = {"saliency": "saliency map of the face", "model_input": "the CNN's input",
         "attention": "Grad-CAM of the CNN"}


@dataclass
class FaceView:
    """The side-by-side pictures and top-k of one face.

    Attributes:
        pictures: ``"saliency"``, ``"model_input"``, ``"attention"`` → ``(S, S, 3)`` uint8 RGB
            (a key is missing when that view was not computed).
        captions: the same keys → one line saying what made the picture.
        top_k: label → probability of the ``k`` most probable labels ({} when no face).
        label: the label shown first, or None.
    """

    pictures: dict[str, np.ndarray] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    top_k: dict[str, float] = field(default_factory=dict)
    label: str | None = None


def face_view(pred: Prediction | None, pipe: Pipeline, top_k: int, probabilities: np.ndarray | None = None) -> FaceView:
    """Pictures, captions and top-k of one face (an empty view for None).

    Args:
        probabilities: ``(C,)`` to show instead of the prediction's own (smoothed live values).
    """
    from fer.viz import prediction_views

    if pred is None:
        return FaceView()
    probs = pred.probabilities if probabilities is None else probabilities
    order = np.argsort(-probs, kind="stable")[:top_k]
    view = FaceView(top_k={pred.labels[i]: float(probs[i]) for i in order}, label=pred.labels[int(order[0])])
    pictures = prediction_views(pred, pipe.spec.input_size, pipe.spec.colour)
    view.pictures["model_input"] = pictures["input"]
    fed = f"face × {pipe.input_saliency_name}" if pipe.saliency_input else "the plain crop"
    view.captions["model_input"] = f"{pipe.spec.input_size}×{pipe.spec.input_size} {pipe.spec.colour}, {fed}"
    if "saliency" in pictures:
        view.pictures["saliency"] = pictures["saliency"]
        view.captions["saliency"] = f"predictor: {pred.saliency_name}"
    if "attention" in pictures:
        view.pictures["attention"] = pictures["attention"]
        view.captions["attention"] = f"Grad-CAM for {pred.attention_label}"
    return view


def panel_html(view: FaceView, key: str, placeholder: str | None = None) -> str:
    """One picture panel: title, picture (or a placeholder box), caption."""
    title = TITLES[key]
    picture = view.pictures.get(key)
    caption = view.captions.get(key, "")
    body = image_html(picture, f"{title}: {caption}", placeholder or EMPTY[key])
    return (f'<figure class="fer-panel"><figcaption class="fer-title">{escape(title)}</figcaption>{body}'
            f'<figcaption class="fer-caption">{escape(caption) or "&nbsp;"}</figcaption></figure>')


def panels_html(view: FaceView, placeholder: str | None = None) -> list[str]:
    """The three picture panels, in the order saliency, model input, Grad-CAM."""
    return [panel_html(view, key, placeholder) for key in TITLES]


# --------------------------------------------------------------------------- confusion statistics


@dataclass(frozen=True)
class Measured:
    """A confusion matrix of the current model and where it was measured.

    Attributes:
        labels: the ``K`` labels of the matrix.
        confusion: ``(K, K)`` int64 counts, rows true (or posed) labels, columns the model's answers.
        source: one line saying where the counts come from.
    """

    labels: tuple[str, ...]
    confusion: np.ndarray
    source: str

    @property
    def n(self) -> int:
        """Samples counted."""
        return int(self.confusion.sum())


def evaluation_record(config: PipelineConfig, evaluation: Mapping[str, Any], n_images: int) -> dict[str, Any]:
    """What the app keeps of an Evaluate run in the session: numbers only, and the configuration
    (`fer.PipelineConfig.to_dict`) that made them, so they are quoted beside its answers alone."""
    return {"config": config.to_dict(), "model": config.model, "labels": list(evaluation["labels"]),
            "confusion": evaluation["confusion"], "images": int(n_images)}


def measured_for(
    config: PipelineConfig,
    card_evaluation: Mapping[str, Any] | None,
    session_evaluation: Mapping[str, Any] | None = None,
    live: SessionConfusion | None = None,
) -> Measured | None:
    """The confusion statistics to show beside answers made with ``config``, from the best source
    there is: the model card's evaluation (given only when the pipeline runs as the card measured
    it, see `measured`), else this session's Evaluate run made with this very configuration, else
    the live session's posed-versus-said counts; None when nothing is measured."""
    if card_evaluation and card_evaluation.get("confusion"):
        where = card_evaluation.get("dataset") or "its test data"
        split = f" ({card_evaluation['split']})" if card_evaluation.get("split") else ""
        return Measured(tuple(card_evaluation["labels"]), np.asarray(card_evaluation["confusion"], np.int64),
                        f"from the model card: {where}{split}")
    if (session_evaluation and session_evaluation.get("config") == config.to_dict()
            and session_evaluation.get("confusion")):
        return Measured(tuple(session_evaluation["labels"]), np.asarray(session_evaluation["confusion"], np.int64),
                        f"measured in this session on your {session_evaluation.get('images', '?')} images (Evaluate)")
    if live is not None and live.total > 0:
        return Measured(live.labels, live.counts.copy(), "from your posed expressions in Live (one person, one camera)")
    return None


def measured(pipe: Pipeline, session_evaluation: Mapping[str, Any] | None = None,
             live: SessionConfusion | None = None) -> Measured | None:
    """`measured_for` the pipeline's configuration; its model card's figure counts only while the
    main network is fed as it was trained (`fer.Pipeline.runs_as_trained`)."""
    if pipe.config is None:
        raise ValueError("the app's pipelines are built from a PipelineConfig")
    return measured_for(pipe.config, pipe.spec.evaluation if pipe.runs_as_trained else None, session_evaluation, live)


CONFUSION_TITLE = '<p class="fer-title">How far to trust the answer</p>'
NOT_MEASURED = ("**Not measured yet** for this model, so there is no error rate to quote. Measure it: "
                "upload labelled faces in **Evaluate**, or pose expressions in **Live** (*I'm posing*).")


def confusion_html(measured: Measured | None, label: str | None) -> str:
    """The compact confusion panel for the answer ``label``: how often the model is right overall,
    and, from the matrix's column for ``label``, what the truth was when it gave that answer."""
    if measured is None:
        return f'<div class="fer-confusion">{CONFUSION_TITLE}{markdown_html(NOT_MEASURED)}</div>'
    conf = measured.confusion
    head = (f'{CONFUSION_TITLE}<p class="fer-confusion-head">Accuracy <b>{metrics.accuracy(conf):.0%}</b> '
            f'on n={measured.n}, {escape(measured.source)}.</p>')
    if label is None:
        return f'<div class="fer-confusion">{head}</div>'
    if label not in measured.labels:
        return (f'<div class="fer-confusion">{head}<p>That measurement has no <b>{escape(label)}</b> class, '
                f'so this answer was never scored.</p></div>')
    j = measured.labels.index(label)
    column = conf[:, j]
    said = int(column.sum())
    if said == 0:
        return (f'<div class="fer-confusion">{head}<p>In that measurement it never answered '
                f'<b>{escape(label)}</b>.</p></div>')
    order = [i for i in np.argsort(-column, kind="stable") if column[i] > 0][:4]
    bars = "".join(
        f'<div class="fer-bar-row"><span class="fer-bar-label">{escape(measured.labels[i])}</span>'
        f'<span class="fer-bar"><span style="width:{100 * column[i] / said:.0f}%"></span></span>'
        f'<span class="fer-bar-value">{column[i] / said:.0%}</span></div>'
        for i in order
    )
    return (f'<div class="fer-confusion">{head}<p>When it says <b>{escape(label)}</b>, it was really '
            f'(of {said}):</p>{bars}</div>')


def markdown_html(text: str) -> str:
    """One paragraph of text with ``**bold**`` and ``*italic*``, as escaped HTML (for HTML panels)."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return f"<p>{text}</p>"


# --------------------------------------------------------------------------- second opinion

#: How the app names the shipped networks.
NETWORK_NAMES = {"mini_xception_fer2013": "mini-Xception", "face_api_expression": "face-api"}


def network_name(name: str) -> str:
    """A network's short display name."""
    return NETWORK_NAMES.get(name, name)


def second_opinion_html(pred: Prediction | None, main: str, agreement: Agreement | None = None) -> str:
    """The other network's top-1 for this face and whether it agrees with the first (the main
    network, or an ensemble's first member), and, over a live session or a clip, how often the two agreed."""
    from fer.tracking import opinion_pair

    pair = opinion_pair(list(pred.members), main) if pred is not None else None
    if pred is None or pair is None:
        return '<div class="fer-opinion"></div>'
    first, second = pair
    (a, pa), (b, pb) = pred.member_top1(first), pred.member_top1(second)
    verdict = ("agrees" if a == b else f"disagrees: {escape(network_name(first))} says <b>{escape(a)}</b> {pa:.0%}")
    lines = [f'<p class="fer-title">Second opinion</p><p>{escape(network_name(second))} (trained on other data): '
             f'<b>{escape(b)}</b> {pb:.0%} · {verdict}</p>']
    if agreement is not None and agreement.total:
        lines.append(f"<p>{agreement_sentence(agreement)}</p>")
    return f'<div class="fer-opinion">{"".join(lines)}</div>'


def agreement_sentence(agreement: Agreement) -> str:
    """"The two networks agreed on 87 % of 230 faces; most often …" (HTML)."""
    first, second = escape(network_name(agreement.first)), escape(network_name(agreement.second))
    text = f"Over this session {first} and {second} agreed on <b>{agreement.rate:.0%}</b> of {agreement.total} faces"
    pairs = agreement.disagreements(2)
    if pairs:
        text += "; most often " + "; ".join(f"{first} said {escape(x)} where {second} said {escape(y)} ({n}×)"
                                            for x, y, n in pairs)
    return text + "."
