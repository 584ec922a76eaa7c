"""The paper's protocol (within- and cross-dataset, with and without saliency, every fold) on two
small synthetic datasets drawn here, and model cards of the models it trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer.models import ModelSpec
from fer.research.card import model_card
from tests import synthetic as S

FOLDS = 3
ARGS = ["--backbone", "mini_xception", "--no-pretrained", "--crops", "--input-size", "32", "--epochs", "3",
        "--batch-size", "8", "--lr", "0.003", "--folds", str(FOLDS), "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    from fer.cli import main

    root = tmp_path_factory.mktemp("protocol")
    S.write_rafd(root / "rafd", n_subjects=6, seed=10, gazes=("frontal", "left"))
    # RaFD's eighth class, which CFEE lacks: the angry drawings under RaFD's "contemptuous" name.
    for path in sorted((root / "rafd").glob("*_angry_*.png")):
        shutil.copy(path, path.with_name(path.name.replace("_angry_", "_contemptuous_")))
    S.write_folder(root / "cfee", n_subjects=6, per_label=2, seed=20)
    status = main(["protocol", "--rafd", str(root / "rafd"), "--cfee", str(root / "cfee"), "--out", str(root / "out"),
                   *ARGS])
    return root, root / "out", status


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "protocol.json").read_text())["rows"]


def test_protocol_runs_every_fold_and_both_cross_settings(protocol_run: tuple[Path, Path, int]) -> None:
    _, out, status = protocol_run
    assert status == 0
    record = json.loads((out / "protocol.json").read_text())
    assert record["shared_labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    settings = {(r["train"], r["test"], r["saliency"], r["classes"]) for r in record["rows"]}
    assert settings == {(a, a, s, "all") for a in ("rafd", "cfee") for s in ("none", "face-prior")} | {
        (a, b, s, "common") for a, b in (("rafd", "cfee"), ("cfee", "rafd")) for s in ("none", "face-prior")} | {
        ("rafd", "cfee", s, "all, renormalised") for s in ("none", "face-prior")}  # only RaFD has a class CFEE lacks
    for row in record["rows"]:
        assert row["folds"] == FOLDS and len(row["accuracy_per_fold"]) == FOLDS
        mean, std = row["accuracy"]
        assert mean == pytest.approx(np.mean(row["accuracy_per_fold"]), abs=1e-6)
        assert std == pytest.approx(np.std(row["accuracy_per_fold"], ddof=1), abs=1e-6)
        assert (out / row["plot"]).read_bytes()[:4] == b"\x89PNG"
    by = {(r["train"], r["test"], r["saliency"], r["classes"]): r for r in record["rows"]}
    # Within-dataset rows test every subject once: all images over the folds.
    assert by[("rafd", "rafd", "none", "all")]["n"] == 6 * 5 * 2 and by[("cfee", "cfee", "none", "all")]["n"] == 48
    # RaFD → CFEE on the common classes: a model without contempt, scored on all 48 CFEE images.
    common = ModelSpec.load(out / "rafd-none-common" / "fold-0" / "best.json")
    assert "contempt" not in common.labels and by[("rafd", "cfee", "none", "common")]["n"] == 48
    assert "contempt" in ModelSpec.load(out / "rafd-none" / "fold-0" / "best.json").labels
    # CFEE → RaFD: the RaFD contempt images are not in the shared classes, so not scored.
    assert by[("cfee", "rafd", "none", "common")]["n"] == 6 * 4 * 2
    for setting in ("rafd-none", "rafd-face-prior-common", "cfee-face-prior"):
        for fold in range(FOLDS):
            assert (out / setting / f"fold-{fold}" / "best.json").is_file()
            assert (out / setting / f"fold-{fold}" / "confusion.png").is_file()
        folds = json.loads((out / setting / "folds.json").read_text())["test"]
        assert folds["folds"] == FOLDS and len(folds["confusion"]) == len(folds["labels"])


def test_paper_figures_only_beside_comparable_rows(protocol_run: tuple[Path, Path, int]) -> None:
    _, out, _ = protocol_run
    table = (out / "protocol.md").read_text()
    assert "95.71 %" in table and "74.79 %" in table
    # The paper's 65.39 % was ML-Net saliency: never beside face-prior rows.
    assert {r["paper"] for r in _rows(out) if r["train"] != r["test"]} == {None}
    assert "65.39 %" not in table.split("\n\n")[0]
    first = table.split("\n\n")[0]
    lines = [line for line in first.splitlines() if line.startswith("| RaFD") or line.startswith("| CFEE")]
    assert len(lines) == 10
    assert all("no: backbone mini_xception (paper: CaffeNet); random init (paper: ImageNet)" in line for line in lines)
    assert "## Most frequent confusions" in table and "could not be read here" in table
    assert "±" in lines[0]


def test_saliency_effect_is_paired_by_fold_with_its_interval(protocol_run: tuple[Path, Path, int]) -> None:
    """The paper's claim is a difference: each with/without pair has its paired test over folds."""
    from fer.research.stats import t_quantile

    _, out, _ = protocol_run
    record = json.loads((out / "protocol.json").read_text())
    by = {(r["train"], r["test"], r["saliency"], r["classes"]): r for r in record["rows"]}
    assert len(record["paired"]) == 5  # every row without saliency has its partner
    for pair in record["paired"]:
        key = (pair["train"], pair["test"])
        without, with_ = by[(*key, "none", pair["classes"])], by[(*key, "face-prior", pair["classes"])]
        p = pair["paired"]
        assert set(p) >= {"mean_difference", "ci95", "p_value", "test", "n_folds"}
        d = np.subtract(with_["accuracy_per_fold"], without["accuracy_per_fold"])
        assert p["n_folds"] == FOLDS and p["differences"] == pytest.approx(d, abs=1e-6)
        assert p["mean_difference"] == pytest.approx(d.mean(), abs=1e-6)
        if d.std(ddof=1) > 0:
            half = t_quantile(0.975, FOLDS - 1) * d.std(ddof=1) / np.sqrt(FOLDS)
            assert p["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-6)
            assert 0 < p["p_value"] <= 1
        assert "paired t-test over 3 folds" in p["test"]
    table = (out / "protocol.md").read_text()
    assert "## Saliency effect (with minus without, paired by fold)" in table
    effect = table.split("## Saliency effect")[1].split("##")[0]
    assert effect.count("| RaFD") + effect.count("| CFEE") == 5 and "95 % CI" in effect


def test_paired_statistics_over_seeds_average_each_fold_first() -> None:
    from fer.research.protocol import ProtocolRow, paired_rows

    def row(saliency: str, folds: tuple[float, ...]) -> ProtocolRow:
        return ProtocolRow("rafd", "rafd", saliency, "all", "test folds", 3, 30, (0.0, 0.0), (0.0, 0.0), ("a",), "",
                           accuracy_per_fold=folds)

    seeds = [[row("none", (0.5, 0.6, 0.7)), row("face-prior", (0.6, 0.6, 0.9))],
             [row("none", (0.5, 0.8, 0.7)), row("face-prior", (0.8, 0.8, 0.7))]]
    (pair,) = paired_rows(seeds, "face-prior")
    assert pair.paired.differences == pytest.approx((0.2, 0.0, 0.1)) and pair.paired.n_seeds == 2
    assert pair.paired.n_folds == 3 and "mean of 2 seeds" in pair.paired.test
    assert pair.without == pytest.approx(np.mean([0.5, 0.6, 0.7, 0.5, 0.8, 0.7]))


def test_within_dataset_rows_match_evaluate_on_the_recorded_test_subjects(protocol_run: tuple[Path, Path, int],
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Each fold's own test numbers and ``evaluate --split test`` on its checkpoint agree."""
    from fer.cli import main

    root, out, _ = protocol_run
    row = next(r for r in _rows(out) if (r["train"], r["test"], r["saliency"]) == ("cfee", "cfee", "face-prior"))
    for fold in range(FOLDS):
        spec = ModelSpec.load(out / "cfee-face-prior" / f"fold-{fold}" / "best.json")
        assert spec.saliency_input == "face-prior" and spec.training["fold"] == fold
        status = main(["evaluate", "--dataset", "folder", "--root", str(root / "cfee"), "--crops", "--model",
                       str(out / "cfee-face-prior" / f"fold-{fold}"), "--split", "test", "--json"])
        assert status == 2  # another dataset name than training's ("cfee"): refused, not re-derived
        assert "trained on cfee" in capsys.readouterr().err
        status = main(["evaluate", "--dataset", "cfee", "--root", str(root / "cfee"), "--crops", "--model",
                       str(out / "cfee-face-prior" / f"fold-{fold}"), "--split", "test", "--json"])
        result = json.loads(capsys.readouterr().out)
        assert status == 0 and result["warnings"] == []
        assert result["confusion"] == spec.evaluation["confusion"]
        assert result["accuracy"] == pytest.approx(row["accuracy_per_fold"][fold], abs=1e-6)
    status = main(["evaluate", "--dataset", "cfee", "--root", str(root / "cfee"), "--crops", "--model",
                   str(out / "cfee-face-prior" / "fold-0"), "--json"])
    captured = capsys.readouterr()
    assert status == 0 and "not a held-out score (use --split test)" in captured.err
    assert json.loads(captured.out)["warnings"] == [captured.err.strip()]


def test_rerun_reuses_finished_folds_and_refuses_other_settings(protocol_run: tuple[Path, Path, int],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from fer.cli import main

    root, out, _ = protocol_run
    spec_file = out / "cfee-none" / "fold-1" / "best.json"
    before = (spec_file.stat().st_mtime_ns, spec_file.read_bytes())
    base = ["protocol", "--rafd", str(root / "rafd"), "--cfee", str(root / "cfee"), "--out", str(out)]
    assert main([*base, *ARGS]) == 0
    assert (spec_file.stat().st_mtime_ns, spec_file.read_bytes()) == before  # reused, never rewritten
    capsys.readouterr()
    changed = [*ARGS]
    changed[changed.index("--epochs") + 1] = "2"
    assert main([*base, *changed]) == 2
    err = capsys.readouterr().err
    assert "holds another run" in err and "epochs: was 3, now 2" in err
    assert (spec_file.stat().st_mtime_ns, spec_file.read_bytes()) == before


def test_model_card_of_a_trained_model(protocol_run: tuple[Path, Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    from fer.cli import main
    from fer.research.evaluate import EvaluationResult

    _, out, _ = protocol_run
    spec = ModelSpec.load(out / "cfee-none" / "fold-0" / "best.json")
    card = model_card(spec)
    assert card.startswith("# Model card: cfee-mini_xception")
    assert f"{100 * spec.evaluation['accuracy']:.2f} %" in card
    assert "| true \\ predicted | angry | happy | sad | surprise |" in card
    assert "subject k-fold" in card and "Limitations" in card and spec.training["run_id"] in card
    confusion_rows = [line for line in card.splitlines() if line.startswith("| angry |") and line.count("|") == 6]
    assert len(confusion_rows) == 1
    counts = [int(v) for v in confusion_rows[0].strip("|").split("|")[1:]]
    assert counts == spec.evaluation["confusion"][0]
    assert "Most frequent confusions" in card and "could not be read here" in card
    for c in EvaluationResult.from_dict(spec.evaluation).confusions():
        assert f"{c.true} → {c.predicted}: {c.count} ({c.rate:.1%} of {c.true})" in card
    assert main(["card", str(out / "cfee-none" / "fold-0")]) == 0
    assert capsys.readouterr().out.strip() == card.strip()


def test_model_card_without_measurements() -> None:
    card = model_card(ModelSpec.load(Path(__file__).resolve().parent.parent / "weights" / "mini_xception_fer2013.json"))
    assert "Not measured here." in card and "MIT" in card
