"""The result block the Image and Live tabs share: per face, where humans would look, what the CNN
sees, where it looked, the top-k, a second opinion and how far to trust the answer.

Pictures are inline HTML with their titles outside the picture, so a title never covers a heatmap
and no picture is ever a file on the server.

The block's elements, by id (``T`` is ``image`` or ``live``); every panel is plain HTML that a page
script may fill as well as the server (an on-device Live renders into the same ids):

- ``#T-input``: the picture or the webcam (a Gradio ``Image``).
- ``#T-saliency``, ``#T-model-input``, ``#T-gradcam``: one `panel_html` each, a
  ``<figure class="fer-panel" data-panel="saliency|model_input|attention">`` holding
  ``<h3 class="fer-title">`` (what the picture is, naming the predictor or the network),
  ``<img class="fer-picture">`` (or ``<div class="fer-picture fer-empty">`` before a face), a colour
  key ``<div class="fer-key">`` (low → high, on the two maps), ``<figcaption class="fer-caption">``
  (what made it) and ``<p class="fer-info">`` (ⓘ: what it means, in plain words).
- ``#T-top-k``: the top-k (a Gradio ``Label``: label → probability).
- ``#T-second-opinion``: `second_opinion_html`, ``<div class="fer-opinion">``.
- ``#T-confusion``: the trust panel (`fer.app.trust.trust_html`), ``<div class="fer-confusion">``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from fer.app.media import image_html

if TYPE_CHECKING:
    from fer.config import PipelineConfig
    from fer.pipeline import Pipeline, Prediction
    from fer.tracking import Agreement, SessionConfusion

#: Panel titles before there is a face (short, so they fit a phone), and what each shows then.
TITLES = {"saliency": "Where humans would look", "model_input": "What the CNN sees",
          "attention": "Where the CNN looked"}
EMPTY = {"saliency": "saliency map of the face", "model_input": "the CNN's input",
         "attention": "Grad-CAM of the CNN"}
#: Saliency predictor → (panel title, ⓘ line): the title says what the predictor is.
SALIENCY_TEXTS = {
    "face-prior": ("Typical human gaze on faces",
                   "A template from eye-tracking studies: where people usually look, not this person's gaze."),
    "spectral-residual": ("What stands out in the image: not human gaze",
                          "Spectral residual (Hou & Zhang 2007): regions unlike their surroundings, "
                          "not where people look."),
    "mlnet": ("Predicted human gaze (ML-Net)",
              "ML-Net (Cornia et al. 2016), a network trained to predict where people look."),
}
#: The ⓘ lines of the CNN's two panels.
INFO = {"model_input": "The face as the network gets it: its input size, grey for a grey network. "
                       "Blocky is all it sees.",
        "attention": "Grad-CAM: the parts that raised the score of this answer most; bright is where "
                     "the network looked."}
#: Pictures drawn with a colour map: a key (low → high) under each.
KEYED = {"saliency": "saliency", "attention": "attention"}


@dataclass
class FaceView:
    """The side-by-side pictures and top-k of one face.

    Attributes:
        pictures: ``"saliency"``, ``"model_input"``, ``"attention"`` → ``(S, S, 3)`` uint8 RGB
            (a key is missing when that view was not computed).
        captions: the same keys → one line saying what made the picture.
        titles, info: the same keys → the panel's title and its ⓘ line (defaults: `TITLES`, none).
        top_k: label → probability of the ``k`` most probable labels ({} when no face).
        label: the label shown first, or None.
    """

    pictures: dict[str, np.ndarray] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    top_k: dict[str, float] = field(default_factory=dict)
    label: str | None = None


def face_view(pred: Prediction | None, pipe: Pipeline, top_k: int, probabilities: np.ndarray | None = None) -> FaceView:
    """Pictures, captions, titles and top-k of one face (an empty view for None).

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
    net = network_name(pipe.main.spec.name)
    view.pictures["model_input"] = pictures["input"]
    fed = f"face × {pipe.input_saliency_name}" if pipe.saliency_input else "the plain crop"
    view.captions["model_input"] = f"{pipe.spec.input_size}×{pipe.spec.input_size} {pipe.spec.colour}, {fed}"
    view.titles["model_input"], view.info["model_input"] = f"What {net} sees", INFO["model_input"]
    if "saliency" in pictures:
        view.pictures["saliency"] = pictures["saliency"]
        view.captions["saliency"] = f"predictor: {pred.saliency_name}"
        title, info = SALIENCY_TEXTS.get(pred.saliency_name or "", (TITLES["saliency"], ""))
        view.titles["saliency"], view.info["saliency"] = title, info
    if "attention" in pictures:
        view.pictures["attention"] = pictures["attention"]
        view.captions["attention"] = f"Grad-CAM for {pred.attention_label}"
        view.titles["attention"], view.info["attention"] = f"Where {net} looked", INFO["attention"]
    return view


def colour_key(palette: str) -> str:
    """A colour key, low → high, for pictures drawn with ``palette`` (`fer.viz.PALETTES`)."""
    from fer.viz import palette_stops

    gradient = ", ".join(palette_stops(palette))
    return (f'<div class="fer-key" role="img" aria-label="colour key: dark is low, bright is high">'
            f'<span>low</span><span class="fer-key-bar" style="background: linear-gradient(to right, {gradient})">'
            f'</span><span>high</span></div>')


def panel_html(view: FaceView, key: str, placeholder: str | None = None) -> str:
    """One picture panel: title, picture (or a placeholder box), colour key, caption, ⓘ line."""
    title = view.titles.get(key, TITLES[key])
    picture = view.pictures.get(key)
    caption = view.captions.get(key, "")
    body = image_html(picture, f"{title}: {caption}", placeholder or EMPTY[key])
    key_html = colour_key(KEYED[key]) if key in KEYED and picture is not None else ""
    info = view.info.get(key, "")
    # The ⓘ is drawn by the style sheet: not every system font has the character.
    info_html = f'<p class="fer-info"><span class="fer-i" aria-hidden="true">i</span>{escape(info)}</p>' if info else ""
    return (f'<figure class="fer-panel" data-panel="{key}"><h3 class="fer-title">{escape(title)}</h3>{body}'
            f'{key_html}<figcaption class="fer-caption">{escape(caption) or "&nbsp;"}</figcaption>{info_html}</figure>')


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


def is_ensemble(pipe: Pipeline) -> bool:
    """Whether ``pipe``'s model is an ensemble (its answer is already the average of two networks)."""
    from fer.ensemble import Ensemble

    return isinstance(pipe.model, Ensemble)


def second_opinion_html(pred: Prediction | None, main: str, agreement: Agreement | None = None,
                        ensemble: bool = False) -> str:
    """The other network's top-1 for this face and whether it agrees with the first (the main
    network), and, over a live session or a clip, how often the two agreed. For an ``ensemble``
    both members' answers, the average being the answer above."""
    from fer.tracking import opinion_pair

    pair = opinion_pair(list(pred.members), main) if pred is not None else None
    if pred is None or pair is None:
        return '<div class="fer-opinion"></div>'
    first, second = pair
    (a, pa), (b, pb) = pred.member_top1(first), pred.member_top1(second)
    if ensemble:
        verdict = "they agree" if a == b else "they disagree; the answer above is their average"
        lines = [f'<h3 class="fer-title">The ensemble\'s two networks</h3><p>{escape(network_name(first))}: '
                 f'<b>{escape(a)}</b> {pa:.0%} · {escape(network_name(second))}: <b>{escape(b)}</b> {pb:.0%} · '
                 f'{verdict}</p>']
    else:
        verdict = ("agrees" if a == b else f"disagrees: {escape(network_name(first))} says <b>{escape(a)}</b> {pa:.0%}")
        lines = [f'<h3 class="fer-title">Second opinion</h3><p>{escape(network_name(second))} (trained on other data): '
                 f'<b>{escape(b)}</b> {pb:.0%} · {verdict}</p>']
    if agreement is not None and agreement.total:
        lines.append(f"<p>{short_agreement(agreement)}</p>")
    return f'<div class="fer-opinion">{"".join(lines)}</div>'


def agreement_sentence(agreement: Agreement, where: str = "this session") -> str:
    """"Over this session mini-Xception and face-api agreed on 87 % of 230 faces; most often …"
    (HTML), over ``where``."""
    first, second = escape(network_name(agreement.first)), escape(network_name(agreement.second))
    text = f"Over {escape(where)} {first} and {second} agreed on <b>{agreement.rate:.0%}</b> of {agreement.total} faces"
    pairs = agreement.disagreements(2)
    if pairs:
        text += "; most often " + "; ".join(f"{first} said {escape(x)} where {second} said {escape(y)} ({n}×)"
                                            for x, y, n in pairs)
    return text + "."


def short_agreement(agreement: Agreement) -> str:
    """The agreement over a live session in one short line (HTML), under the line that names both
    networks: "This session: agreed on 87 % of 230 faces; most often happy / neutral (12×)."."""
    text = f"This session: agreed on <b>{agreement.rate:.0%}</b> of {agreement.total} faces"
    pairs = agreement.disagreements(1)
    if pairs:
        x, y, n = pairs[0]
        text += f"; most often {escape(x)} / {escape(y)} ({n}×)"
    return text + "."
