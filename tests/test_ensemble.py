"""The ensemble of the shipped networks, and second opinions, on real images with the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fer
from fer.crops import CropStyle, box_crop, crop_face
from fer.ensemble import Ensemble, ensemble_spec, project
from fer.errors import InputError
from fer.face import FaceDetector
from fer.models import ENSEMBLES, ModelSpec, predict_probabilities, spec_path_for
from fer.zoo import load_model

from .conftest import ASTRONAUT, compose_faces
from .test_cli import run_cli
from .test_face import ASTRONAUT_BOX

MEMBERS = ENSEMBLES["ensemble"]


@pytest.fixture(scope="module")
def ensemble_pipe():
    with fer.load("ensemble", saliency="face-prior", attention=True) as pipe:
        yield pipe


def test_registered_and_described() -> None:
    assert "ensemble" in fer.available_models()
    loaded = load_model("ensemble")
    assert isinstance(loaded, Ensemble) and loaded.engine == "opencv"  # both members on OpenCV DNN
    assert tuple(m.spec.name for m in loaded.members) == MEMBERS == ("mini_xception_fer2013", "face_api_expression")
    main, other = (m.spec for m in loaded.members)
    assert loaded.spec.labels == main.labels and set(loaded.spec.labels) == set(other.labels)
    assert main.name in loaded.spec.licence and other.name in loaded.spec.licence and "MIT" in loaded.spec.licence
    assert loaded.spec.architecture == "ensemble" and loaded.spec.evaluation is None
    assert (loaded.spec.input_size, loaded.spec.colour, loaded.spec.crop) == (main.input_size, main.colour, main.crop)
    with pytest.raises(InputError, match="is an ensemble of mini_xception_fer2013, face_api_expression"):
        spec_path_for("ensemble")


def test_project_reorders_drops_and_renormalises() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]], np.float32)
    out = project(probs, ("a", "b", "c"), ("c", "a", "z"))
    np.testing.assert_allclose(out, [[0.2 / 0.7, 0.5 / 0.7, 0.0], [1.0, 0.0, 0.0]], rtol=1e-6)
    assert project(probs, ("a", "b", "c"), ("a", "b", "c")) is probs
    assert project(probs, ("a", "b", "c"), ("x",)).sum() == 0  # nothing shared: zeros, not NaN


def test_members_without_a_shared_label_are_refused() -> None:
    spec = ModelSpec.load(spec_path_for("default"))
    other = ModelSpec(**{**spec.to_dict(), "name": "other", "labels": ("calm", "joy"), "mean": (0.5,), "std": (0.5,)})
    with pytest.raises(InputError, match="share no label"):
        ensemble_spec("odd", [spec, other])


def test_each_member_gets_its_own_crop_and_the_ensemble_is_their_mean(ensemble_pipe, astronaut) -> None:
    """Recomputed by hand from the members alone: each on the crop its spec names, then the mean."""
    (pred,) = ensemble_pipe(astronaut)
    with FaceDetector("short") as detector:
        (face,) = detector(astronaut)
    members = {}
    for name in MEMBERS:
        loaded = load_model(name)
        cut = crop_face if loaded.spec.crop == "aligned" else box_crop
        margin = 0.2 if loaded.spec.margin is None else loaded.spec.margin
        crop = cut(astronaut, face.keypoints, face.box, margin, 224)[0]
        probs = predict_probabilities(loaded, crop[None])[0]
        members[name] = probs[[loaded.spec.labels.index(label) for label in pred.labels]]
    assert set(pred.members) == set(MEMBERS)
    for name, probs in members.items():
        assert np.abs(pred.members[name] - probs).max() < 1e-5, name
    assert np.abs(pred.probabilities - (members[MEMBERS[0]] + members[MEMBERS[1]]) / 2).max() < 1e-5
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert pred.label == "happy" and pred.member_top1("face_api_expression")[0] == "happy"
    assert pred.agrees_with("face_api_expression") and pred.agrees_with("mini_xception_fer2013")
    np.testing.assert_array_equal(pred.crop, face.crop)  # what is shown is the main member's crop


def test_grad_cam_is_the_main_members_for_the_ensembles_class(ensemble_pipe, astronaut) -> None:
    with fer.load("default") as single:
        for target in (None, "surprise"):
            (pred,) = ensemble_pipe(astronaut, attention=True, target=target)
            assert pred.attention_model == "mini_xception_fer2013"
            (alone,) = single(astronaut, attention=True, target=pred.attention_label)
            assert np.abs(pred.attention - alone.attention).max() < 1e-5
    assert ensemble_pipe.grad_cam(pred.model_input[None], [pred.labels.index("sad")], 64).shape == (1, 64, 64)


def test_second_opinion_runs_beside_an_unchanged_main_model(astronaut) -> None:
    with fer.load("default") as plain, fer.load("default", second_opinion="face_api_expression") as both, \
            fer.load("face_api_expression") as other:
        (a,), (b,), (c,) = plain(astronaut), both(astronaut), other(astronaut)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert list(b.members) == ["mini_xception_fer2013", "face_api_expression"]
    reordered = c.probabilities[[c.labels.index(label) for label in b.labels]]
    assert np.abs(b.members["face_api_expression"] - reordered).max() < 1e-6
    assert other.detector.style == CropStyle("box", 0.0)  # face-api alone: its own crop is the main one
    with pytest.raises(InputError, match="no network 'nope'"):
        b.member_top1("nope")


def test_several_faces_and_batch(ensemble_pipe, astronaut) -> None:
    canvas = compose_faces(astronaut, ASTRONAUT_BOX, count=3, side=220)
    with fer.load("ensemble", detector="full") as pipe:
        predictions = pipe(canvas)
    assert len(predictions) == 3 and all(p.label == "happy" for p in predictions)
    faces = ensemble_pipe.detect(astronaut)
    single = ensemble_pipe.predict_faces(faces)[0]
    batched = ensemble_pipe.predict_faces(faces * 3)
    assert len(batched) == 3 * len(faces) == 3
    for pred in batched:
        np.testing.assert_allclose(pred.probabilities, single.probabilities, atol=1e-5)


def test_the_pipeline_cuts_each_members_crop_from_the_detected_face(astronaut) -> None:
    from fer.crops import box_crop

    loaded = load_model("ensemble")
    with FaceDetector("short") as detector:  # a plain detector: it knows nothing of the members
        pipe = fer.Pipeline(loaded, detector)
        box_style = pipe.styles["face_api_expression"]
        (face,) = pipe.detect(astronaut)
        np.testing.assert_array_equal(face.crop_in(box_style), box_crop(astronaut, face.keypoints, face.box,
                                                                         box_style.margin, 224)[0])
        assert pipe.predict_faces([face])[0].members.keys() == {"mini_xception_fer2013", "face_api_expression"}
        with pytest.raises(InputError, match="no 'box' crop with margin 0.0"):  # faces cut elsewhere
            pipe.predict_faces(detector(astronaut))


def test_cli_predict_with_the_ensemble() -> None:
    result = run_cli("predict", str(ASTRONAUT), "--model", "ensemble", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["model"] == "ensemble" and doc["images"][0]["faces"][0]["top_k"][0]["label"] == "happy"
    assert result.stderr.strip() == ""


def test_evaluate_scores_the_ensemble_each_member_on_its_own_crop(tmp_path, astronaut) -> None:
    from fer.io import read_image
    from fer.research.datasets import load_folder
    from fer.research.evaluate import evaluate
    from fer.viz import save_png

    (tmp_path / "data" / "happy").mkdir(parents=True)
    (tmp_path / "data" / "neutral").mkdir()
    save_png(tmp_path / "data" / "happy" / "a.png", astronaut)
    save_png(tmp_path / "data" / "happy" / "b.png", np.ascontiguousarray(astronaut[:, ::-1]))
    save_png(tmp_path / "data" / "neutral" / "c.png", read_image(ASTRONAUT.parent / "coffee.png"))
    cache = tmp_path / "cache"
    result = evaluate("ensemble", load_folder(tmp_path / "data"), cache_dir=cache)
    assert result.model == "ensemble" and result.n == 2 and result.accuracy == 1.0
    assert [s.reason for s in result.skipped] == ["no face found"]
    # One entry per image (the face-less one too) holds both members' crops of its largest face:
    # mini-Xception's aligned one and face-api's box, as the pipeline cuts them.
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 3
    with_face = [dict(np.load(e)) for e in entries if "reason" not in np.load(e).files]
    assert len(with_face) == 2 and all(e["crop"].shape == e["other0"].shape for e in with_face)
    assert all(not np.array_equal(e["crop"], e["other0"]) for e in with_face)
    alone = evaluate("face_api_expression", load_folder(tmp_path / "data"), cache_dir=cache)
    assert alone.n == 2 and len(list(cache.rglob("*.npz"))) == 2 * 3  # another detector setting: own entries
