"""Evaluate an expression model on labelled faces: accuracy, macro F1, per-class precision/recall
and the confusion matrix, over the labels the model and the data share.

Cross-dataset evaluation works the same way: a RaFD model (8 labels, with contempt) on CFEE's basic
set (7 labels) is scored on the 7 shared labels, its probabilities renormalised over them, so it
can never predict a label the data does not have; data samples whose label the model lacks are left
out and counted in ``excluded``.

    python -m fer evaluate --dataset folder --root faces/ --model runs/rafd-alexnet/best.json --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer import metrics
from fer.config import PipelineConfig
from fer.errors import InputError, check_deadline
from fer.research import distributed as dist
from fer.research.datasets import Dataset, Sample, Skipped
from fer.research.face_cache import Crops, crop_size_for, largest_faces, prepare_crops

if TYPE_CHECKING:
    from fer.ensemble import Ensemble
    from fer.models import LoadedModel
    from fer.pipeline import Pipeline, Prediction


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of a model on labelled faces.

    Attributes:
        labels: the ``K`` labels scored (shared by model and data), in the model's order.
        confusion: ``(K, K)`` int64 counts; rows are true labels, columns predicted ones.
        skipped: inputs that yielded no face crop (unreadable, no face), with the reason.
        excluded: true labels the model does not know → how many samples carried them (not scored).
        model: the model's name; dataset: the data's name (free text, for reports).
        model_labels: all the model's labels (``labels`` are those of them that were scored).
    """

    labels: tuple[str, ...]
    confusion: np.ndarray
    skipped: tuple[Skipped, ...] = ()
    excluded: Mapping[str, int] = field(default_factory=dict)
    model: str = ""
    dataset: str = ""
    model_labels: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Samples scored."""
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Fraction of samples predicted right, in [0, 1] (0.0 when nothing was scored)."""
        return metrics.accuracy(self.confusion)

    @property
    def support(self) -> np.ndarray:
        """``(K,)`` int64 samples per true label."""
        return metrics.support(self.confusion)

    @property
    def precision(self) -> np.ndarray:
        """``(K,)`` float64 in [0, 1]; 0 for a label never predicted."""
        return metrics.precision(self.confusion)

    @property
    def recall(self) -> np.ndarray:
        """``(K,)`` float64 in [0, 1]; 0 for a label with no samples."""
        return metrics.recall(self.confusion)

    @property
    def f1(self) -> np.ndarray:
        """``(K,)`` float64 per-label F1."""
        return metrics.f1(self.confusion)

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the labels that occur as truth or prediction."""
        return metrics.macro_f1(self.confusion)

    def confusions(self, k: int = 3) -> list[metrics.Confusion]:
        """The ``k`` most frequent mistakes (true → predicted) with counts and rates of the true label."""
        return metrics.top_confusions(self.confusion, self.labels, k)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Rebuild a result from `to_dict` output (or a model spec's ``evaluation``)."""
        try:
            labels = tuple(data["labels"])
            confusion = np.asarray(data["confusion"], np.int64).reshape(len(labels), len(labels))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not an evaluation record: {exc}") from None
        skipped = tuple(Skipped(s["path"], s["reason"]) for s in data.get("skipped") or ())
        return cls(labels, confusion, skipped, dict(data.get("excluded") or {}), str(data.get("model") or ""),
                   str(data.get("dataset") or ""), tuple(data.get("model_labels") or labels))

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "accuracy", "macro_f1", "labels", "confusion", "per_class", "confusions", "skipped",
        "excluded", "model", "dataset", "model_labels"}``, JSON-ready; ``per_class`` maps label →
        ``{"precision", "recall", "f1", "n"}``; ``confusions`` lists the 3 most frequent mistakes
        (`fer.metrics.Confusion.to_dict`)."""
        per_class = {
            label: {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f), 6),
                    "n": int(n)}
            for label, p, r, f, n in zip(self.labels, self.precision, self.recall, self.f1, self.support, strict=True)
        }
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(self.macro_f1, 6),
            "labels": list(self.labels),
            "confusion": self.confusion.astype(int).tolist(),
            "per_class": per_class,
            "confusions": [c.to_dict() for c in self.confusions()],
            "skipped": [s.to_dict() for s in self.skipped],
            "excluded": dict(self.excluded),
            "model": self.model,
            "dataset": self.dataset,
            "model_labels": list(self.model_labels or self.labels),
        }


def score(
    probabilities: np.ndarray,
    model_labels: Sequence[str],
    true_labels: Sequence[str],
    *,
    data_labels: Sequence[str] | None = None,
    skipped: Sequence[Skipped] = (),
    model: str = "",
    dataset: str = "",
) -> EvaluationResult:
    """Score predictions over the labels model and data share.

    Args:
        probabilities: ``(N, C)`` float probabilities over ``model_labels``.
        model_labels: the model's ``C`` labels.
        true_labels: the ``N`` samples' true labels.
        data_labels: the data's label set (default: the labels in ``true_labels``); the shared
            labels are ``model_labels`` that are also in it.
        skipped: inputs that yielded no crop, carried into the result.
    Returns:
        `EvaluationResult` over the shared labels, in the model's order. Probabilities are
        renormalised over them; samples whose true label is not shared are counted in ``excluded``.
    Raises:
        InputError: model and data share no label, or shapes disagree.
    """
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or probabilities.shape != (len(true_labels), len(model_labels)):
        raise InputError(
            f"probabilities have shape {probabilities.shape}, expected ({len(true_labels)}, {len(model_labels)})"
        )
    data_set = set(true_labels if data_labels is None else data_labels)
    shared = [label for label in model_labels if label in data_set]
    if not shared:
        raise InputError(
            f"the model's labels ({', '.join(model_labels)}) and the data's ({', '.join(sorted(data_set))}) "
            "have none in common"
        )
    columns = [list(model_labels).index(label) for label in shared]
    index = {label: i for i, label in enumerate(shared)}
    keep = np.array([label in index for label in true_labels], bool)
    excluded: dict[str, int] = {}
    for label in true_labels:
        if label not in index:
            excluded[label] = excluded.get(label, 0) + 1
    sub = probabilities[keep][:, columns]
    # Renormalising does not change the argmax; it matters for anyone reading the probabilities.
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    true = np.array([index[label] for label, k in zip(true_labels, keep, strict=True) if k], np.int64)
    predicted = sub.argmax(axis=1) if len(sub) else np.zeros(0, np.int64)
    return EvaluationResult(tuple(shared), metrics.confusion_matrix(true, predicted, len(shared)), tuple(skipped),
                            excluded, model, dataset, tuple(model_labels))


def evaluate(
    model: Pipeline | PipelineConfig | LoadedModel | Ensemble | str | Path,
    samples: Dataset | Crops | Sequence[Sample],
    *,
    assume_cropped: bool | None = None,
    margin: float | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    saliency_weights: str | None = None,
    restrict_labels: bool = True,
    progress: bool = False,
    cache: bool = True,
    deadline: float | None = None,
) -> EvaluationResult:
    """Evaluate a pipeline on labelled face images: each image's largest face, top-1, scored by
    the code that answers ``fer predict`` (`fer.Pipeline.predict_faces`; ready-made crops by
    `fer.Pipeline.predict_crops`). Inside a distributed job (torchrun) every rank scores its share
    of the samples and the counts are summed: every rank returns the whole result.

    Args:
        model: a `fer.Pipeline` (used as it is: its detector, crops, saliency input, ensemble), a
            `fer.PipelineConfig` (loaded, then closed), or a loaded network / ensemble / registered
            name / checkpoint path, put in a pipeline with the default settings and ``margin``,
            ``device`` and ``saliency_weights``.
        samples: a `Dataset` (e.g. ``load_folder(dir)``), its samples, or ready `Crops`.
        assume_cropped: the images are face crops already (default: the dataset's setting, else False).
        margin, device, saliency_weights: only for a ``model`` that is not a pipeline or config
            (those carry their own).
        cache_dir: face cache folder (default ``fer.cache.cache_dir("crops")``: none with
            ``FER_CACHE_DIR=off``); ``cache`` False writes none (the app's uploads).
        deadline: a ``time.monotonic()`` instant past which it stops (`fer.errors.JobTimeout`).
        restrict_labels: score over the labels model and data share, probabilities renormalised
            over them (the default; right for cross-dataset work). False scores over all the
            model's labels: use it for data that holds only some classes (a folder of happy faces),
            where restricting would leave the model nothing to get wrong.
    Returns:
        `EvaluationResult`. The data's labels are the dataset's defined set when a `Dataset` is
        given (`Dataset.defined_labels`), else the labels present.
    Raises:
        InputError: no samples, no face in any image, or ``margin``/``device``/``saliency_weights``
            given with a pipeline or config.
    """
    from fer.pipeline import Pipeline

    if isinstance(model, (Pipeline, PipelineConfig)) and (margin is not None or device != "cpu" or saliency_weights):
        raise InputError("a pipeline or PipelineConfig carries its own margin, device and saliency weights")
    if isinstance(model, Pipeline):
        return _evaluate(model, samples, assume_cropped, cache_dir, cache, batch_size, restrict_labels, progress,
                         deadline)
    with pipeline_for(model, margin=margin, device=device, saliency_weights=saliency_weights) as pipe:
        return _evaluate(pipe, samples, assume_cropped, cache_dir, cache, batch_size, restrict_labels, progress,
                         deadline)


def pipeline_for(model: PipelineConfig | LoadedModel | Ensemble | str | Path, *, margin: float | None = None,
                 device: str = "cpu", saliency_weights: str | None = None) -> Pipeline:
    """The pipeline `evaluate` scores ``model`` with (see there); close it after use."""
    from fer.pipeline import assemble, from_config

    if isinstance(model, PipelineConfig):
        return from_config(model)
    weights = None if saliency_weights is None else str(saliency_weights)
    if isinstance(model, (str, Path)):
        return from_config(PipelineConfig(str(model), margin=margin, device=device, saliency_weights=weights))
    return assemble(model, PipelineConfig(margin=margin, saliency_weights=weights))


def _evaluate(pipe: Pipeline, samples: Dataset | Crops | Sequence[Sample], assume_cropped: bool | None,
              cache_dir: str | Path | None, cache: bool, batch_size: int, restrict_labels: bool,
              progress: bool, deadline: float | None = None) -> EvaluationResult:
    from tqdm.auto import tqdm

    from fer.research.runs import check_saliency_weights

    if pipe.saliency_input:
        check_saliency_weights(pipe.main.spec, pipe.predictor(pipe.input_saliency_name), pipe.saliency_weights)
    spec = pipe.spec
    dataset_name = ""
    if isinstance(samples, Dataset):
        data_labels: Sequence[str] = samples.defined_labels
        dataset_name = samples.name
        if assume_cropped is None:
            assume_cropped = samples.assume_cropped
        samples = samples.samples
    else:
        data_labels = samples.labels if isinstance(samples, Crops) else [s.label for s in samples]
    if len(samples) == 0:
        raise InputError("nothing to evaluate: no labelled samples")
    ctx = dist.context()
    part = dist.shard(len(samples), ctx)
    show = progress and ctx.main
    if isinstance(samples, Crops) or assume_cropped or any(s.pixels is not None for s in samples):
        # Ready-made crops: every network gets them as they are (`Pipeline.predict_crops`).
        crops = samples.subset(np.arange(len(samples))[part]) if isinstance(samples, Crops) else prepare_crops(
            samples[part], crop_size=crop_size_for(samples, pipe.main.spec.input_size), assume_cropped=True,
            progress=show)  # ready-made crops: nothing is detected, so nothing is cached
        kept, skipped = crops.samples, crops.skipped

        def batch(i: int, j: int) -> list[Prediction]:
            check_deadline(deadline)
            return pipe.predict_crops(crops.images[i:j], crops.keypoints[i:j], attention=False)
    else:
        faces, kept, skipped = largest_faces(samples[part], pipe, cache_dir=cache_dir, cache=cache, progress=show,
                                             deadline=deadline)

        def batch(i: int, j: int) -> list[Prediction]:
            check_deadline(deadline)
            return pipe.predict_faces(faces[i:j], attention=False)
    rows = [p.probabilities for i in tqdm(range(0, len(kept), batch_size), desc="scoring", unit="batch",
                                          disable=not show, leave=False) for p in batch(i, i + batch_size)]
    probabilities = np.stack(rows) if rows else np.zeros((0, len(spec.labels)), np.float32)
    local = score(probabilities, spec.labels, [s.label for s in kept], data_labels=spec.labels
                  if not restrict_labels else data_labels, model=spec.name, dataset=dataset_name)
    shares = dist.gather((skipped, dict(local.excluded)), ctx)
    excluded: dict[str, int] = {}
    for _, counts in shares:
        for label, count in counts.items():
            excluded[label] = excluded.get(label, 0) + count
    result = dataclasses.replace(local, confusion=dist.all_reduce_sum(local.confusion, ctx),
                                 skipped=tuple(s for share, _ in shares for s in share), excluded=excluded)
    if result.n == 0:
        reasons = "; ".join(sorted({s.reason for s in result.skipped}))[:300]
        raise InputError(f"no face crop could be made from any of the {len(result.skipped)} images ({reasons})")
    return result


# --------------------------------------------------------------------------- plots and text


def plot_confusion(result: EvaluationResult, path: str | Path, title: str | None = None) -> Path:
    """Write `confusion_png` to ``path`` (its folder made if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(confusion_png(result, title))
    return path


def confusion_png(result: EvaluationResult, title: str | None = None) -> bytes:
    """A PNG, in memory, with the confusion matrix twice: counts, and rows normalised to recall
    (`fer.plots.draw_confusion`)."""
    import io

    from fer.plots import draw_confusion, new_figure

    heading = title or f"{result.model or 'model'} on {result.dataset or 'data'}"
    # Two short left-aligned lines: image viewers (the app's among them) draw their buttons over the
    # top-right corner, where one long centred line would end.
    heading = f"{heading}\nn={result.n}, accuracy {result.accuracy:.1%}, macro F1 {result.macro_f1:.3f}"
    side = 2.2 + 0.5 * len(result.labels)
    # Wide enough for the heading too (about 0.08 inch a character at fontsize 10).
    longest = max(len(line) for line in heading.splitlines())
    fig = new_figure(max(2 * side, 0.08 * longest / 0.7), side + 0.8)
    for ax, normalise, name in zip(fig.subplots(1, 2), (False, True), ("counts", "rows normalised (recall)"),
                                   strict=True):
        draw_confusion(ax, result.confusion, result.labels, normalise=normalise)
        ax.set_title(name, fontsize=9)
    fig.suptitle(heading, fontsize=10, x=0.02, ha="left")
    out = io.BytesIO()
    # bbox "tight": square heatmaps leave the layout engine too little height for the rotated labels.
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight", pad_inches=0.15)
    return out.getvalue()


def format_result(result: EvaluationResult) -> str:
    """Plain-text report: headline numbers, per-class table, confusion matrix, most frequent confusions."""
    from fer.research.human import confusion_lines

    lines = [f"model {result.model or '?'} on {result.dataset or 'data'}: n={result.n}  "
             f"accuracy {result.accuracy:.2%}  macro F1 {result.macro_f1:.4f}"]
    width = max(8, *(len(label) for label in result.labels))
    lines.append(f"{'label':<{width}}  precision  recall      n")
    for label, p, r, n in zip(result.labels, result.precision, result.recall, result.support, strict=True):
        lines.append(f"{label:<{width}}  {p:9.3f}  {r:6.3f}  {n:5d}")
    lines.append("confusion (rows true, columns predicted):")
    lines.append(" " * width + "  " + " ".join(f"{label[:6]:>6}" for label in result.labels))
    for label, row in zip(result.labels, result.confusion, strict=True):
        lines.append(f"{label:<{width}}  " + " ".join(f"{v:6d}" for v in row))
    lines.append("most frequent confusions:")
    lines += [f"  {line}" for line in confusion_lines(result.confusions())]
    unscored = [label for label in result.model_labels if label not in result.labels]
    if unscored:
        lines.append(f"scored over the {len(result.labels)} labels the data defines; the model's other labels "
                     f"({', '.join(unscored)}) were never predicted (--all-labels to include them)")
    if result.excluded:
        lines.append("not scored (label unknown to the model): "
                     + ", ".join(f"{k} {v}" for k, v in result.excluded.items()))
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} image(s):")
        lines += [f"  {s.path}: {s.reason}" for s in result.skipped[:20]]
        if len(result.skipped) > 20:
            lines.append(f"  … and {len(result.skipped) - 20} more (see --json)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``evaluate``."""
    from fer.cli import add_pipeline_arguments
    from fer.research.datasets import add_dataset_arguments

    add_dataset_arguments(parser, margin=False)
    # The options `fer predict` takes, read the same way: the score is that of predict's answers.
    add_pipeline_arguments(parser)
    parser.add_argument("--split", choices=["all", "train", "val", "test"], default="all",
                        help="part of the data to score: train/val/test take the subjects the model's spec "
                        "recorded for that part (same dataset and subject rule only) (default: %(default)s)")
    parser.add_argument("--all-labels", action="store_true",
                        help="score over all the model's labels; default: only those the data defines, with "
                        "probabilities renormalised over them (cross-dataset), which for data holding one or "
                        "two classes leaves the model little to get wrong")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="write the confusion matrix figure here")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.epilog = ("Exit status: 0 every image was scored, 1 some were skipped (listed), 2 bad input. "
                     "Under torchrun every process scores its share; rank 0 prints.")


def select_split(dataset: Dataset, spec_training: Mapping[str, Any] | None, split: str) -> tuple[Dataset, list[str]]:
    """The part ``split`` of ``dataset`` (``"all"``: everything) and loud warnings: subjects of that
    part missing here (`fer.research.splits.recorded_part`), or training subjects in "all"."""
    from fer.research.splits import recorded_part, training_overlap

    if split == "all":
        warning = training_overlap(dataset, spec_training)
        return dataset, [warning] if warning else []
    return recorded_part(dataset, spec_training, split)


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``."""
    import sys

    from fer.cli import config_from_args
    from fer.pipeline import from_config, resolve_device
    from fer.research.datasets import dataset_from_args

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    config = config_from_args(args)
    device = resolve_device(config.device)
    with dist.process_group(device) as ctx, from_config(config.replace(
            device=str(dist.device_for(device, ctx)))) as pipe:
        dataset, warnings = select_split(dataset_from_args(args), pipe.spec.training, args.split)
        result = evaluate(pipe, dataset, cache_dir=args.cache_dir, batch_size=args.batch_size,
                          restrict_labels=not args.all_labels, progress=not args.json)
    if not ctx.main:
        return 1 if result.skipped or dataset.skipped else 0
    result = dataclasses.replace(result, skipped=(*dataset.skipped, *result.skipped))
    for warning in warnings:
        print(warning, file=sys.stderr)
    if args.plot is not None:
        plot_confusion(result, args.plot)
    print(json.dumps({**result.to_dict(), "config": config.to_dict(), "warnings": warnings}) if args.json else
          "\n".join([*warnings, format_result(result)]))
    return 1 if result.skipped else 0
