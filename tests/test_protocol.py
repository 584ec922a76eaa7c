"""The paper's protocol (within- and cross-dataset, with and without saliency) on two small synthetic
datasets drawn here, and model cards of the models it trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fer.models import ModelSpec
from fer.research.card import model_card
from tests import synthetic as S


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from fer.cli import main

    root = tmp_path_factory.mktemp("protocol")
    S.write_rafd(root / "rafd", n_subjects=6, seed=10, gazes=("frontal", "left"))
    S.write_folder(root / "cfee", n_subjects=6, per_label=2, seed=20)
    status = main([
        "protocol", "--rafd", str(root / "rafd"), "--cfee", str(root / "cfee"), "--out", str(root / "out"),
        "--backbone", "mini_xception", "--no-pretrained", "--crops", "--input-size", "32", "--epochs", "3",
        "--batch-size", "8", "--lr", "0.003", "--folds", "3", "--device", "cpu", "--quiet",
    ])
    return root / "out", status


def test_protocol_writes_the_table_beside_the_paper(protocol_run: tuple[Path, int]) -> None:
    out, status = protocol_run
    assert status == 0
    table = (out / "protocol.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| RaFD") or line.startswith("| CFEE")]
    assert len(rows) == 8
    assert "95.71 %" in table and "74.79 %" in table and "65.39 %" in table
    record = json.loads((out / "protocol.json").read_text())
    settings = {(r["train"], r["test"], r["saliency"]) for r in record["rows"]}
    assert settings == {(a, b, s) for a in ("rafd", "cfee") for b in ("rafd", "cfee") for s in ("none", "face-prior")}
    for row in record["rows"]:
        assert (out / row["plot"]).read_bytes()[:4] == b"\x89PNG"
        assert 0.0 <= row["accuracy"] <= 1.0 and row["n"] > 0
        if row["train"] != row["test"]:
            assert row["n"] == 48 and row["split"] == "all images"  # the whole other dataset
    assert {r["paper"] for r in record["rows"] if r["train"] != r["test"] and r["saliency"] != "none"} == {65.39}


def test_within_dataset_rows_match_evaluate_on_the_test_split(protocol_run: tuple[Path, int], capsys) -> None:
    """Training's own test-fold numbers and ``evaluate --split test`` on the saved checkpoint agree."""
    from fer.cli import main

    out, _ = protocol_run
    record = json.loads((out / "protocol.json").read_text())
    row = next(r for r in record["rows"] if (r["train"], r["test"], r["saliency"]) == ("rafd", "rafd", "face-prior"))
    spec = ModelSpec.load(out / "rafd-face-prior" / "best.json")
    assert spec.saliency_input == "face-prior"
    status = main(["evaluate", "--dataset", "rafd", "--root", spec.training["root"], "--crops", "--model",
                   str(out / "rafd-face-prior"), "--split", "test", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert result["n"] == row["n"] == spec.evaluation["n"]
    assert result["confusion"] == spec.evaluation["confusion"]
    assert result["accuracy"] == pytest.approx(row["accuracy"], abs=1e-6)


def test_model_card_of_a_trained_model(protocol_run: tuple[Path, int], capsys) -> None:
    from fer.cli import main

    out, _ = protocol_run
    spec = ModelSpec.load(out / "cfee-none" / "best.json")
    card = model_card(spec)
    assert card.startswith("# Model card: cfee-mini_xception")
    assert f"{100 * spec.evaluation['accuracy']:.2f} %" in card
    assert "| true \\ predicted | angry | happy | sad | surprise |" in card
    assert "subject k-fold" in card and "Limitations" in card
    confusion_rows = [line for line in card.splitlines() if line.startswith("| angry |") and line.count("|") == 6]
    assert len(confusion_rows) == 1
    counts = [int(v) for v in confusion_rows[0].strip("|").split("|")[1:]]
    assert counts == spec.evaluation["confusion"][0]
    assert main(["card", str(out / "cfee-none")]) == 0
    assert capsys.readouterr().out.strip() == card.strip()


def test_model_card_without_measurements() -> None:
    card = model_card(ModelSpec.load(Path(__file__).resolve().parent.parent / "weights" / "mini_xception_fer2013.json"))
    assert "Not measured here." in card and "MIT" in card
    assert np.isfinite(len(card))
