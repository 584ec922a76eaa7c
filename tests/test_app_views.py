"""`fer.app.views` and `fer.app.charts`: the result block (panels titled outside their pictures,
the confusion panel and where its numbers come from) and the inline charts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fer
from fer.app import charts, trust, views
from fer.app.settings import PIPELINES, default_settings
from fer.config import PipelineConfig
from fer.errors import InputError
from fer.tracking import SessionConfusion

EVALUATION = {
    "dataset": "rafd", "split": "test", "labels": ["fear", "happy", "surprise"],
    "confusion": [[4, 0, 2], [0, 6, 0], [2, 0, 6]],
}


@pytest.fixture(scope="module")
def astronaut_view(astronaut: np.ndarray) -> views.FaceView:
    pipe = PIPELINES.get(default_settings("mini_xception_fer2013"))
    return views.face_view(pipe(astronaut, attention=True)[0], pipe, top_k=3)


def test_face_view_shows_saliency_cnn_input_and_gradcam(astronaut_view: views.FaceView) -> None:
    view = astronaut_view
    assert set(view.pictures) == {"saliency", "model_input", "attention"}
    for picture in view.pictures.values():
        assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    # The shipped model is grey 64×64: what the CNN sees is grey, in 64 visible pixel blocks.
    seen = view.pictures["model_input"]
    assert np.array_equal(seen[..., 0], seen[..., 2]) and len(np.unique(seen[:, 0, 0])) <= 64
    assert view.captions == {"saliency": "predictor: face-prior", "model_input": "64×64 grey, the plain crop",
                             "attention": "Grad-CAM for happy"}
    assert list(view.top_k) == ["happy", "surprise", "neutral"] and view.label == "happy"
    assert views.face_view(None, None, 3) == views.FaceView()


def test_panels_are_titled_outside_the_inline_picture(astronaut_view: views.FaceView) -> None:
    html = views.panels_html(astronaut_view)
    assert len(html) == 3
    for panel, key in zip(html, views.TITLES, strict=True):
        title = astronaut_view.titles[key]
        assert panel.index(f'<h3 class="fer-title">{title}</h3>') < panel.index('src="data:image/jpeg;base64,') \
            < panel.index("fer-caption") < panel.index('class="fer-info"><span class="fer-i"')
    empty = views.panels_html(views.FaceView(), "no face in view")
    assert all("no face in view" in p and "<img" not in p and "fer-key" not in p for p in empty)


def test_maps_say_what_made_them_and_carry_their_own_colour_key(astronaut: np.ndarray,
                                                                 astronaut_view: views.FaceView) -> None:
    from fer.viz import PALETTES, colorize, palette_stops

    assert astronaut_view.titles == {"saliency": "Typical human gaze on faces", "model_input": "What mini-Xception sees",
                                     "attention": "Where mini-Xception looked"}
    assert "template from eye-tracking studies" in astronaut_view.info["saliency"]
    saliency, model_input, gradcam = views.panels_html(astronaut_view)
    # Human gaze and Grad-CAM in two different colour maps, each with its key (low → high).
    assert ", ".join(palette_stops("saliency")) in saliency and ", ".join(palette_stops("attention")) in gradcam
    assert "fer-key" not in model_input
    assert not np.array_equal(PALETTES["saliency"], PALETTES["attention"])
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None]
    assert np.abs(colorize(ramp, "saliency").astype(int) - colorize(ramp, "attention")).mean() > 40
    # Another predictor, another title: spectral residual is no model of human gaze.
    settings = dataclasses.replace(default_settings("mini_xception_fer2013"), saliency="spectral-residual")
    pipe = PIPELINES.get(settings)
    view = views.face_view(pipe(astronaut, attention=True)[0], pipe, top_k=3)
    assert view.titles["saliency"] == "What stands out in the image: not human gaze"


def test_confusion_statistics_come_from_the_best_source() -> None:
    live = SessionConfusion(["fear", "happy", "surprise"])
    config = PipelineConfig("m", margin=0.3)
    assert views.measured_for(config, None) is None
    assert views.measured_for(config, None, None, live) is None  # nothing counted yet
    live.add("happy", "happy", 3)
    assert "posed expressions" in views.measured_for(config, None, None, live).source
    record = views.evaluation_record(config, EVALUATION, n_images=21)
    assert views.measured_for(config, None, record, live).source == "measured in this session on your 21 images (Evaluate)"
    assert "posed" in views.measured_for(config.replace(model="other"), None, record, live).source  # another model's run
    # The same model with other settings: the run measured other answers, so it is not quoted.
    for changed in ({"margin": 0.2}, {"detector": "full"}, {"saliency_input": True}, {"min_score": 0.6}):
        assert "posed" in views.measured_for(config.replace(**changed), None, record, live).source
    card = views.measured_for(config, EVALUATION, record, live)
    assert card.source == "from the model card: rafd (test)" and card.n == 20


def test_the_model_card_is_quoted_only_while_the_model_runs_as_trained(pipeline) -> None:  # noqa: ANN001
    spec_margin = pipeline.main.spec.margin
    assert pipeline.runs_as_trained
    with fer.load(pipeline.config.replace(saliency_input=True)) as fed, \
            fer.load(pipeline.config.replace(margin=0.45 if spec_margin != 0.45 else 0.4)) as wider:
        assert not fed.runs_as_trained and not wider.runs_as_trained
        record = views.evaluation_record(fed.config, EVALUATION, n_images=21)
        assert views.measured(fed, record).source.startswith("measured in this session")
        assert views.measured(wider, record) is None
        # Neither is the published figure (measured on the network as trained).
        assert "No published figure applies" in trust.trust_html(fed, "happy") and "about 66 %" not in trust.trust_html(fed, "happy")


def test_wilson_interval_matches_the_published_tables() -> None:
    from fer.metrics import wilson_interval

    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    with pytest.raises(InputError):
        wilson_interval(3, 0)


def test_trust_quotes_the_card_with_source_n_interval_and_what_it_is_not() -> None:
    pipe = PIPELINES.get(default_settings("mini_xception_fer2013"))
    html = trust.trust_html(pipe, "happy")
    # 66 % of 3,589 (a FER2013 test split): Wilson 95 % 64.4-67.5 %.
    for part in ("about 66 %", "n = 3,589", "95 % interval 64–68 %", "arXiv 1710.07557", "not measured by us",
                 "65 ± 5 %", "What it is not", "Per expression: not measured by us"):
        assert part in html, part


def test_trust_says_nothing_is_published_for_face_api_and_shows_agreement(astronaut: np.ndarray) -> None:
    from fer.tracking import count_opinion

    pipe = PIPELINES.get(default_settings("face_api_expression"))
    pred = pipe(astronaut)[0]
    agreement = count_opinion(None, pred, pipe.main.spec.name)
    html = trust.trust_html(pipe, pred.label, agreement=agreement, agreement_where="on this face")
    assert "face-api: no accuracy is published" in html and "about 66 %" not in html
    assert "face-api and mini-Xception agree on <b>1 of 1</b> faces on this face (95 % interval 21–100 %)" in html


def test_trust_measured_figures_carry_n_interval_and_coverage_and_live_stays_beside() -> None:
    pipe = PIPELINES.get(default_settings("mini_xception_fer2013"))
    measured = views.measured_for(PipelineConfig(), EVALUATION)
    live = SessionConfusion(pipe.labels)
    live.add("happy", "happy", 3)
    html = trust.trust_html(pipe, "surprise", measured, live)
    assert "<b>80 %</b> right on n = 20 (95 % interval 58–92 %), over 3 of 7 expressions (fear, happy, surprise)" in html
    assert "When it says <b>surprise</b>, it was really (of 8, that measurement)" in html
    assert html.index(">surprise<") < html.index(">fear<") and "75%" in html and "25%" in html
    assert "about 66 %" in html  # the card's figure stays
    assert "Your personal check (Live, posing: one person, one camera): <b>100 %</b> right on n = 3" in html
    assert "over 1 of 7 expressions (happy)" in html
    assert "no <b>sad</b> class" in trust.trust_html(pipe, "sad", measured)
    never = views.Measured(("a", "b"), np.array([[3, 0], [1, 0]]), "x")
    assert "never answered <b>b</b>" in trust.trust_html(pipe, "b", never)
    # Posed counts alone: their own column, labelled as such.
    assert "(of 3, your posed frames)" in trust.trust_html(pipe, "happy", None, live)


def test_timeline_draws_every_label_that_was_ever_top1() -> None:
    labels = ["angry", "fear", "happy", "sad", "surprise"]
    values = np.full((30, 5), 0.05, np.float32)
    values[:, 2] = 0.8  # happy leads throughout, except
    values[12:15, 1], values[12:15, 2] = 0.35, 0.2  # fear is top-1 for three frames, with a low peak
    values[:, 3] = np.linspace(0.1, 0.45, 30)  # sad rises to the second-highest peak but never leads
    values[:, 4] = 0.3  # surprise: neither
    chosen = charts.shown_labels(values, k=2)
    assert chosen == [2, 1, 3]
    svg = charts.timeline_svg(np.linspace(0, 2.9, 30), values, labels, "Face #1", k=2)
    assert svg.count("<polyline") == 3 and ">fear<" in svg and ">sad<" in svg and ">surprise<" not in svg
    assert "0.0 s" in svg and "2.9 s" in svg
    empty = charts.timeline_svg(np.zeros(0), np.zeros((0, 5)), labels, "Timeline: no face in view")
    assert "<polyline" not in empty and "nothing yet" in empty
    assert charts.shown_labels(np.zeros((0, 3))) == []


def test_count_matrix_is_a_table() -> None:
    html = charts.matrix_html(np.array([[3, 1], [0, 0]]), ["happy", "sad"], "posed", "said")
    assert html.count("<tr>") == 3 and "posed ↓ / said →" in html and ">3<" in html
    assert "<script" not in charts.matrix_html(np.zeros((1, 1), int), ["<script>"], "a", "b")


def test_second_opinion_says_whether_the_two_networks_agree(astronaut: np.ndarray) -> None:
    from fer.tracking import Agreement

    pipe = PIPELINES.get(default_settings("mini_xception_fer2013"))
    pred = pipe(astronaut)[0]
    html = views.second_opinion_html(pred, "mini_xception_fer2013")
    assert "face-api (trained on other data): <b>happy</b> 100% · agrees" in html
    # Told the other way round (face-api the main network), the disagreement names the first one.
    labels = pred.labels
    probs = np.eye(len(labels), dtype=np.float32)
    forced = type(pred)(pred.face, labels, probs[labels.index("sad")], pred.model_input,
                        members={"face_api_expression": probs[labels.index("sad")],
                                 "mini_xception_fer2013": probs[labels.index("happy")]})
    assert "disagrees: face-api says <b>sad</b> 100%" in views.second_opinion_html(forced, "face_api_expression")
    agreement = Agreement("a", "b", ("happy", "sad"))
    for first, second in [("happy", "happy")] * 3 + [("happy", "sad")]:
        agreement.add(first, second)
    assert views.agreement_sentence(agreement) == (
        "Over this session a and b agreed on <b>75%</b> of 4 faces; most often a said happy where b said sad (1×).")
    assert views.second_opinion_html(None, "x") == '<div class="fer-opinion"></div>'
