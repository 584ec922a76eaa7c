"""Evaluation: metrics on a hand-made case, cross-dataset label mapping, and the ``evaluate`` command
on the shipped FER2013 model with synthetic and real (astronaut) images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer.errors import InputError
from fer.research import datasets as D
from fer.research.evaluate import EvaluationResult, evaluate, score
from tests import synthetic as S
from tests.conftest import ASTRONAUT, NO_FACE


def _one_hot(indices: list[int], k: int) -> np.ndarray:
    probs = np.full((len(indices), k), 0.1 / (k - 1))
    probs[np.arange(len(indices)), indices] = 0.9
    return probs


def test_hand_made_case() -> None:
    labels = ("angry", "happy", "sad")
    truth = ["angry", "angry", "angry", "happy", "happy", "sad"]
    predicted = [0, 0, 1, 1, 2, 2]  # angry, angry, happy, happy, sad, sad
    result = score(_one_hot(predicted, 3), labels, truth)
    assert result.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.n == 6 and result.accuracy == pytest.approx(4 / 6)
    np.testing.assert_allclose(result.precision, [1.0, 0.5, 0.5])
    np.testing.assert_allclose(result.recall, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(result.f1, [0.8, 0.5, 2 / 3])
    assert result.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    d = result.to_dict()
    assert d["per_class"]["angry"] == {"precision": 1.0, "recall": 0.666667, "f1": 0.8, "n": 3}
    assert set(d) >= {"n", "accuracy", "macro_f1", "labels", "confusion", "per_class", "skipped"}
    again = EvaluationResult.from_dict(json.loads(json.dumps(d)))
    assert again.to_dict() == d


def test_cross_dataset_scores_shared_labels_only() -> None:
    """A RaFD model (8 labels, with contempt) on CFEE (7 basic + compounds): contempt can never be
    predicted, and CFEE's compound samples are not scored."""
    rafd_labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")
    cfee_labels = (*D.CFEE_BASIC, *D.CFEE_COMPOUND)
    probs = np.zeros((4, 8))
    probs[0, [7, 3, 4]] = [0.6, 0.3, 0.1]  # true happy: contempt wins overall, happy among shared labels
    probs[1, [7, 4]] = [0.5, 0.5]  # true sad
    probs[2, [0, 1]] = [0.3, 0.7]  # true angry, predicted disgust
    probs[3, 3] = 1.0  # true awed: CFEE compound, unknown to the model
    result = score(probs, rafd_labels, ["happy", "sad", "angry", "awed"], data_labels=cfee_labels)
    assert result.labels == rafd_labels[:7]  # model order, contempt dropped
    assert result.n == 3 and result.excluded == {"awed": 1}
    happy, sad, angry, disgust = (result.labels.index(x) for x in ("happy", "sad", "angry", "disgust"))
    assert result.confusion[happy, happy] == 1 and result.confusion[sad, sad] == 1
    assert result.confusion[angry, disgust] == 1
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.to_dict()["model_labels"] == list(rafd_labels)


def test_no_shared_labels_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="none in common"):
        score(np.ones((1, 2)) / 2, ("happy", "sad"), ["awed"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "faces"
    S.write_folder(root, n_subjects=3, per_label=2, seed=4)
    return root


def test_evaluate_shipped_model_on_a_folder(folder: Path) -> None:
    dataset = D.load_folder(folder, assume_cropped=True)
    result = evaluate("default", dataset)
    assert result.model == "mini_xception_fer2013" and result.dataset == "folder"
    # The FER2013 model's labels shared with the data's four, in the model's order.
    assert result.labels == ("angry", "happy", "sad", "surprise")
    assert result.n == len(dataset) == 24
    assert result.confusion.sum() == result.n
    assert result.accuracy == pytest.approx(np.trace(result.confusion) / result.n)
    every = evaluate("default", dataset, restrict_labels=False)
    assert every.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert every.n == 24 and every.accuracy <= result.accuracy


def test_evaluate_cli_json_and_plot(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fer.cli import main

    data = tmp_path / "faces"
    shutil.copytree(folder, data)
    (data / "sadness" / "s09_broken.png").write_bytes(b"GIF89a broken")
    plot = tmp_path / "plots" / "confusion.png"
    status = main(["evaluate", "--dataset", "folder", "--root", str(data), "--crops", "--json", "--plot", str(plot)])
    out = json.loads(capsys.readouterr().out)
    assert status == 1  # an image was skipped
    assert set(out) >= {"n", "accuracy", "macro_f1", "labels", "confusion", "per_class", "skipped"}
    confusion = np.array(out["confusion"])
    assert confusion.shape == (4, 4) and confusion.sum() == out["n"] == 24
    assert out["accuracy"] == pytest.approx(np.trace(confusion) / out["n"], abs=1e-6)
    assert [Path(s["path"]).name for s in out["skipped"]] == ["s09_broken.png"]
    assert sum(v["n"] for v in out["per_class"].values()) == out["n"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    status = main(["evaluate", "--dataset", "folder", "--root", str(folder), "--crops"])
    text = capsys.readouterr().out
    assert status == 0 and "accuracy" in text and "confusion" in text and "disgust" in text  # unscored labels named


def test_evaluate_detects_faces_in_real_photos(tmp_path: Path) -> None:
    """Detection-based cropping on the astronaut; the face-less photo is skipped, not fatal."""
    (tmp_path / "happy").mkdir()
    shutil.copy(ASTRONAUT, tmp_path / "happy" / "astronaut.png")
    shutil.copy(NO_FACE, tmp_path / "happy" / "coffee.png")
    result = evaluate("default", D.load_folder(tmp_path), cache_dir=tmp_path / "cache", restrict_labels=False)
    assert result.n == 1
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [("coffee.png", "no face found")]
    assert result.labels[int(np.argmax(result.confusion[result.labels.index("happy")]))] == "happy"


def test_evaluate_refuses_empty_input() -> None:
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate("default", [])


def test_most_frequent_confusions_are_reported_and_marked_human_like() -> None:
    from fer.research.evaluate import format_result

    labels = ("angry", "disgust", "fear", "happy", "surprise")
    truth = ["fear"] * 4 + ["disgust"] * 2 + ["happy"] * 2
    predicted = [4, 4, 4, 2, 0, 1, 3, 3]  # fear → surprise 3 of 4; disgust → angry 1 of 2
    result = score(_one_hot(predicted, 5), labels, truth, data_labels=labels)
    top = result.confusions()
    assert [(c.true, c.predicted, c.count) for c in top] == [("fear", "surprise", 3), ("disgust", "angry", 1)]
    assert result.to_dict()["confusions"][0] == {"true": "fear", "predicted": "surprise", "count": 3, "rate": 0.75,
                                                 "base_rate": 0.0}
    text = format_result(result)
    # No other class is answered "surprise" or "angry": both are above their chance baseline.
    assert "fear → surprise: 3 (75.0% of fear)  [human-like: above chance 0.0%" in text
    assert "disgust → angry: 1 (50.0% of disgust)  [human-like: above chance 0.0%" in text


def test_a_model_that_always_answers_one_class_is_not_human_like() -> None:
    """The issue's case: answering "surprise" for everything made fear → surprise "[human-like]"."""
    from fer.research.evaluate import format_result

    labels = ("angry", "disgust", "fear", "happy", "surprise")
    truth = [label for label in labels for _ in range(6)]
    result = score(_one_hot([4] * len(truth), 5), labels, truth, data_labels=labels)
    text = format_result(result)
    assert "[human-like" not in text
    assert "fear → surprise: 6 (100.0% of fear)  [human pair, not above chance 100.0%" in text
    # A model that confuses fear with surprise far more than it answers surprise otherwise is marked.
    predicted = [0] * 6 + [1] * 6 + [4] * 5 + [2] + [3] * 6 + [4] * 6
    assert "[human-like: above chance 0.0%" in format_result(score(_one_hot(predicted, 5), labels, truth,
                                                                    data_labels=labels))
    assert "Wingenbach, Ashwin & Brosnan 2016" in text and "could not be read here" in text


def test_an_ensemble_is_scored_like_a_model(folder: Path) -> None:
    """Each member on its own crop, the mean of their probabilities scored (tests/test_ensemble.py
    checks the crops and the mean on real faces)."""
    result = evaluate("ensemble", D.load_folder(folder, assume_cropped=True))
    assert result.model == "ensemble" and result.n == 24
    assert result.labels == ("angry", "happy", "sad", "surprise")  # the mini-Xception's order


def test_evaluate_scores_what_predict_answers(tmp_path: Path, astronaut: np.ndarray,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """With the same non-default options, ``evaluate``'s confusion is the one built from ``predict
    --json``'s answers (largest face, top-1) on the same files: both run one pipeline."""
    import cv2

    from fer.cli import main
    from tests.badinputs import ASTRONAUT_BOX
    from tests.conftest import compose_faces

    def save(path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    h, w = astronaut.shape[:2]
    save(tmp_path / "happy" / "a.png", astronaut)
    save(tmp_path / "happy" / "mirrored.png", astronaut[:, ::-1].copy())
    save(tmp_path / "surprise" / "small.png", cv2.resize(astronaut, (w * 3 // 5, h * 3 // 5)))
    save(tmp_path / "sad" / "darker.png", (astronaut * 0.6).astype(np.uint8))
    save(tmp_path / "sad" / "three.png", compose_faces(astronaut, ASTRONAUT_BOX, 3, side=150))
    shutil.copy(NO_FACE, tmp_path / "surprise" / "coffee.png")
    options = ["--model", "ensemble", "--detector", "full", "--margin", "0.35", "--min-score", "0.4",
               "--saliency-input", "on", "--saliency", "spectral-residual", "--saliency-floor", "0.5",
               "--crop-size", "160"]
    files = sorted(str(p) for p in tmp_path.rglob("*.png"))
    assert main(["predict", *files, *options, "--json", "--top-k", "1"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--dataset", "folder", "--root", str(tmp_path), *options, "--all-labels",
                 "--cache-dir", str(tmp_path / "cache"), "--json"]) == 1  # the coffee cup has no face
    scored = json.loads(capsys.readouterr().out)

    labels = answers["labels"]
    assert scored["labels"] == labels
    assert scored["config"] == {**scored["config"], "model": "ensemble", "detector": "full", "margin": 0.35,
                                "min_score": 0.4, "saliency_input": True, "saliency": "spectral-residual",
                                "saliency_floor": 0.5, "crop_size": 160}  # the pipeline it measured
    expected = np.zeros((len(labels), len(labels)), np.int64)
    for image in answers["images"]:
        if image["faces"]:
            truth = Path(image["path"]).parent.name
            expected[labels.index(truth), labels.index(image["faces"][0]["top_k"][0]["label"])] += 1
    assert expected.sum() == 5 and len(next(i for i in answers["images"] if i["path"].endswith("three.png"))["faces"]) == 3
    np.testing.assert_array_equal(np.array(scored["confusion"]), expected)
    assert [Path(s["path"]).name for s in scored["skipped"]] == ["coffee.png"]
