"""The pipeline end to end on real images with the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

import fer
from fer.errors import InputError
from fer.models import ENSEMBLES, PRETRAINED

from .conftest import ASTRONAUT, NO_FACE, compose_faces
from .test_face import ASTRONAUT_BOX


@pytest.mark.parametrize("model", ["default", *sorted(PRETRAINED), *sorted(ENSEMBLES)])
def test_front_door_three_lines(model):
    pipe = fer.load(model)
    try:
        predictions = pipe(str(ASTRONAUT))
    finally:
        pipe.close()
    assert len(predictions) == 1
    assert predictions[0].top_k(1)[0][0] == "happy"


def test_prediction_fields(pipeline):
    (pred,) = pipeline(ASTRONAUT)
    assert pred.label == "happy"
    assert pred.labels == pipeline.labels and len(pred.labels) == pred.probabilities.shape[0]
    assert pred.probabilities.dtype == np.float32
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    top = pred.top_k(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert pred.crop.shape == (224, 224, 3) and pred.crop.dtype == np.uint8
    assert pred.saliency.shape == (224, 224) and pred.saliency.dtype == np.float32
    assert 0.0 <= pred.saliency.min() and pred.saliency.max() <= 1.0
    assert pred.saliency_name == "face-prior"
    assert pred.attention.shape == (224, 224) and pred.attention_label == "happy"
    assert pred.to_dict(2)["top_k"][0]["label"] == "happy"


def test_available_names():
    assert "default" in fer.available_models() and "mini_xception_fer2013" in fer.available_models()
    assert {"face-prior", "spectral-residual"} <= set(fer.available_saliency())


def test_no_face_empty_list(pipeline):
    assert pipeline(NO_FACE) == []


def test_several_faces_batched(astronaut):
    canvas = compose_faces(astronaut, ASTRONAUT_BOX, count=3, side=220)
    with fer.load(detector="full") as pipe:
        predictions = pipe(canvas)
    assert len(predictions) == 3
    assert all(p.label == "happy" for p in predictions)


def test_batch_equals_single(astronaut, pipeline):
    faces = pipeline.detect(astronaut)
    single = pipeline.predict_faces(faces)[0].probabilities
    batched = pipeline.predict_faces(faces * 3)
    assert faces and len(batched) == 3 * len(faces)
    for pred in batched:
        np.testing.assert_allclose(pred.probabilities, single, atol=1e-5)


def test_saliency_input_follows_spec_and_override(astronaut):
    from fer.saliency import DEFAULT_SALIENCY_FLOOR, apply_saliency

    with fer.load(saliency="face-prior") as plain:
        assert plain.saliency_input is False  # the shipped model was trained on plain crops
        (pred,) = plain(astronaut)
        np.testing.assert_array_equal(pred.model_input, pred.crop)
    with fer.load(saliency="face-prior", saliency_input=True) as weighted:
        assert weighted.saliency_floor == DEFAULT_SALIENCY_FLOOR
        (pred2,) = weighted(astronaut)
        expected = apply_saliency(pred2.crop[None], pred2.saliency[None], DEFAULT_SALIENCY_FLOOR)[0]
        np.testing.assert_array_equal(pred2.model_input, expected)
        assert not np.array_equal(pred2.probabilities, pred.probabilities)


def test_attention_target(pipeline, astronaut):
    (pred,) = pipeline(astronaut, target="sad")
    assert pred.attention_label == "sad"
    with pytest.raises(InputError, match="unknown target"):
        pipeline(astronaut, target="bored")


def test_bad_input_clear_error(pipeline):
    with pytest.raises(InputError, match="uint8"):
        pipeline(np.full((64, 64, 3), np.inf))
    # the next good request still works
    assert pipeline(ASTRONAUT)[0].label == "happy"


def test_unknown_saliency_is_clear():
    with pytest.raises(fer.FerError):
        fer.load(saliency="no-such-predictor")


def test_grad_cam_while_other_threads_classify(astronaut):
    """Grad-CAM hooks a module that other threads run at the same time (the app serves several
    requests at once): each call must use its own activations."""
    from concurrent.futures import ThreadPoolExecutor

    with fer.load() as pipe:
        faces = pipe.detect(astronaut)
        reference = pipe.predict_faces(faces, attention=True)[0].attention

        def work(i: int) -> np.ndarray | None:
            return pipe.predict_faces(faces, attention=i % 2 == 0)[0].attention

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(work, range(300)))
    for cam in results[::2]:
        np.testing.assert_allclose(cam, reference, atol=1e-5)


def test_load_leaves_torch_threads_alone():
    """Thread counts are an entry point's choice (CLI, bench, app): loading a pipeline keeps the caller's."""
    import torch

    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    torch.set_num_threads(wanted)
    try:
        with fer.load():
            assert torch.get_num_threads() == wanted
        with fer.load("ensemble", saliency="face-prior", attention=True) as pipe:
            pipe(ASTRONAUT)
            assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
