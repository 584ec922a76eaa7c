"""`fer.app.views` and `fer.app.charts`: the result block (panels titled outside their pictures,
the confusion panel and where its numbers come from) and the inline charts."""

from __future__ import annotations

import numpy as np
import pytest

import fer
from fer.app import charts, views
from fer.app.settings import PIPELINES, default_settings
from fer.config import PipelineConfig
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
    for panel, title in zip(html, views.TITLES.values(), strict=True):
        assert panel.index(title) < panel.index('src="data:image/jpeg;base64,') < panel.index("fer-caption")
    empty = views.panels_html(views.FaceView(), "no face in view")
    assert all("no face in view" in p and "<img" not in p for p in empty)


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


def test_confusion_panel_reads_the_column_of_the_answer() -> None:
    measured = views.measured_for(PipelineConfig(), EVALUATION)
    html = views.confusion_html(measured, "surprise")
    assert "Accuracy <b>80%</b> on n=20" in html and "When it says <b>surprise</b>, it was really (of 8)" in html
    assert html.index(">surprise<") < html.index(">fear<") and "75%" in html and "25%" in html
    assert "no <b>sad</b> class" in views.confusion_html(measured, "sad")
    never = views.confusion_html(views.Measured(("a", "b"), np.array([[3, 0], [1, 0]]), "x"), "b")
    assert "never answered <b>b</b>" in never
    nothing = views.confusion_html(None, "happy")
    assert "Not measured yet" in nothing and "<b>Evaluate</b>" in nothing and "<i>I&#x27;m posing</i>" in nothing


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
