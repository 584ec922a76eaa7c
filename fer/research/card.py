"""Model cards: a model's spec and measured metrics as markdown (CLI ``card`` and the app).

    python -m fer card runs/rafd-alexnet/best.json
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fer.texts import ERRORS, EU_AI_ACT, EXPRESSION_NOT_EMOTION

if TYPE_CHECKING:
    from fer.models import ModelSpec

_LIMITATIONS = f"{EXPRESSION_NOT_EMOTION} {ERRORS} {EU_AI_ACT}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> list[str]:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def _percent(value: Any) -> str:
    return f"{100 * float(value):.2f} %" if value is not None else "—"


def evaluation_markdown(evaluation: Mapping[str, Any]) -> list[str]:
    """Markdown lines for a spec's ``evaluation`` record: headline, per-class table, confusion matrix
    and the most frequent confusions, all computed from the recorded confusion matrix (`fer.metrics`)."""
    from fer.research.evaluate import EvaluationResult
    from fer.research.human import describe, notes

    where = " ".join(str(v) for v in (evaluation.get("dataset"), evaluation.get("split")) if v) or "held-out data"
    result = EvaluationResult.from_dict(evaluation)
    lines = [f"Measured on {where}: n = {result.n}, accuracy {_percent(result.accuracy)}, "
             f"macro F1 {result.macro_f1:.3f}.", ""]
    rows = [(label, f"{p:.3f}", f"{r:.3f}", int(n))
            for label, p, r, n in zip(result.labels, result.precision, result.recall, result.support, strict=True)]
    lines += _table(("Label", "Precision", "Recall", "n"), rows, ("---", "---:", "---:", "---:")) + [""]
    lines += ["Confusion matrix (rows: true label, columns: predicted):", ""]
    lines += _table(("true \\ predicted", *result.labels),
                    [(label, *row) for label, row in zip(result.labels, result.confusion.tolist(), strict=True)],
                    ["---"] + ["---:"] * len(result.labels))
    confusions = result.confusions()
    lines += ["", "Most frequent confusions (rate: share of the true label's images):", ""]
    lines += [f"- {describe(c)}" for c in confusions] or ["- none"]
    lines += [""] + notes(confusions) + [""]
    return lines


def published_markdown(published: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines for a spec's ``published`` record: the figure with its source, n and 95 %
    Wilson interval, or why there is none."""
    from fer.metrics import wilson_interval

    if not published or "accuracy" not in published:
        return [f"None: {(published or {}).get('none', 'the card cites no published evaluation')}."]
    accuracy, n = float(published["accuracy"]), int(published["n"])
    low, high = wilson_interval(round(accuracy * n), n)
    lines = [f"Accuracy {_percent(accuracy)} on {published['dataset']} {published.get('split', '')} "
             f"(n = {n:,}, {published.get('n_note', '')}; 95 % Wilson interval {_percent(low)} – {_percent(high)}), "
             f"as reported by {published['source']}" + (f": \"{published['quote']}\"" if published.get("quote") else "") + "."]
    lines += ["", f"For scale: {published['reference']}."] if published.get("reference") else []
    lines += ["", f"What it is not: {published['unlike']}."] if published.get("unlike") else []
    return lines


def model_card(spec: ModelSpec) -> str:
    """The model card of ``spec`` as markdown: what the model is, how it was trained, how it scored,
    and its limits. Metrics are printed only where the spec records measured ones."""
    colour = "grey" if spec.colour == "grey" else "RGB"
    norm = ", ".join(f"{m:g}" for m in spec.mean), ", ".join(f"{s:g}" for s in spec.std)
    saliency = (f"face crop × `{spec.saliency_input}` saliency map (floor {spec.saliency_floor:g})"
                if spec.saliency_input else "plain face crop")
    facts = [
        ("Architecture", f"`{spec.architecture}`"),
        ("Input", f"{spec.input_size}×{spec.input_size} {colour}, (pixel/255 − [{norm[0]}]) / [{norm[1]}]"),
        ("CNN input", saliency),
        ("Face crop margin", "detector default" if spec.margin is None else f"{spec.margin:g} of the face box per side"),
        ("Labels", ", ".join(spec.labels)),
        ("Training data", spec.training_data or "—"),
        ("Licence", spec.licence),
        ("Source", spec.source or "—"),
        ("Weights", f"`{spec.weights}` (SHA-256 `{spec.sha256[:16]}…`)" if spec.sha256 else f"`{spec.weights}`"),
    ]
    lines = [f"# Model card: {spec.name}", ""]
    lines += _table(("Field", "Value"), facts) + [""]
    lines += ["## Evaluation", ""]
    lines += evaluation_markdown(spec.evaluation) if spec.evaluation else ["Not measured here.", ""]
    lines += ["## Published evaluation (cited, not measured here)", "", *published_markdown(spec.published), ""]
    training = spec.training or {}
    if training:
        split = training.get("split") or {}
        rows = [
            ("Dataset", f"{training.get('dataset', '?')} ({training.get('root', '?')})"),
            ("Split", split.get("method", "?") + (f", fold {split['fold']} of {split['folds']} tests, fold "
                                                  f"{split['val_fold']} validates, seed {split['seed']}"
                                                  if "folds" in split else "")),
            ("Images (train / val / test)", f"{split.get('n_train', '?')} / {split.get('n_val', '?')} / "
                                            f"{split.get('n_test', '?')}"),
            ("Init", "ImageNet" if training.get("pretrained") else "random"),
            ("Optimiser", f"{training.get('optimizer', '?')}, lr {training.get('lr', '?')}, weight decay "
                          f"{training.get('weight_decay', '?')}, batch {training.get('batch_size', '?')}"),
            ("Epochs", f"{training.get('epochs', '?')} (best validation accuracy "
                       f"{_percent(training.get('best_val_accuracy'))} at epoch {training.get('best_epoch', '?')})"),
            ("Augmentation", "flips and small crops" if training.get("augment", True) else "none"),
            ("Classes", ", ".join(training["classes"]) if training.get("classes") else "all the dataset's"),
            ("Skipped images", training.get("skipped_count", 0)),
            ("Device, time", f"{training.get('device', '?')} × {training.get('world_size', 1)} process(es), "
                             f"mixed precision {training.get('amp', 'off')}, {training.get('seconds', '?')} s"),
            ("Run id", f"`{training['run_id']}` (hash of every setting that changes the run)"
             if training.get("run_id") else "not recorded"),
        ]
        lines += ["## Training", ""] + _table(("Setting", "Value"), rows) + [""]
    if spec.notes:
        lines += ["## Notes", "", spec.notes, ""]
    lines += ["## Limitations", "", _LIMITATIONS, ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``card``."""
    parser.add_argument("model", metavar="PATH_OR_NAME",
                        help="registered model name, or checkpoint (.json / .safetensors / folder)")


def run(args: argparse.Namespace) -> int:
    """Print the model card; needs only the spec JSON, not the weights."""
    from fer.models import ModelSpec, spec_path_for

    print(model_card(ModelSpec.load(spec_path_for(args.model))))
    return 0
