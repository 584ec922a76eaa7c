"""Every fold of a subject-independent k-fold split, and scores as mean ± standard deviation over folds.

``train --all-folds`` (and the protocol) train fold 0 … K-1 in turn, each in ``OUT/fold-K`` with its
own checkpoint and confusion plot, and summarise them in ``OUT/folds.json``. One fold tests 1/K of
the subjects; the mean over all folds tests every subject once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer import metrics
from fer.errors import InputError
from fer.research import distributed as dist
from fer.research.evaluate import EvaluationResult
from fer.research.recipes import TrainConfig


@dataclass(frozen=True)
class FoldSummary:
    """Scores of one setting over folds (or over the K fold models tested on the same data).

    ``confusion`` sums the folds' matrices: over test folds every image counts once; over fold
    models tested on one dataset each image counts K times (rates are unaffected).
    """

    results: tuple[EvaluationResult, ...]

    def __post_init__(self) -> None:
        if not self.results:
            raise InputError("no fold results to summarise")
        if len({r.labels for r in self.results}) != 1:
            raise InputError("fold results are over different labels and cannot be summed")

    @property
    def labels(self) -> tuple[str, ...]:
        """The ``K`` labels scored."""
        return self.results[0].labels

    @property
    def accuracy(self) -> tuple[float, float]:
        """Mean and sample standard deviation of the folds' accuracies, in [0, 1]."""
        return metrics.mean_std([r.accuracy for r in self.results])

    @property
    def macro_f1(self) -> tuple[float, float]:
        """Mean and sample standard deviation of the folds' macro F1."""
        return metrics.mean_std([r.macro_f1 for r in self.results])

    @property
    def confusion(self) -> np.ndarray:
        """``(K, K)`` int64, the folds' confusion matrices summed."""
        return np.sum([r.confusion for r in self.results], axis=0).astype(np.int64)

    def confusions(self, k: int = 3) -> list[metrics.Confusion]:
        """The ``k`` most frequent confusions of the summed matrix."""
        return metrics.top_confusions(self.confusion, self.labels, k)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: means, deviations, per-fold scores, the summed confusion and its top confusions."""
        (acc, acc_sd), (f1, f1_sd) = self.accuracy, self.macro_f1
        return {"folds": len(self.results), "accuracy_mean": round(acc, 6), "accuracy_std": round(acc_sd, 6),
                "macro_f1_mean": round(f1, 6), "macro_f1_std": round(f1_sd, 6),
                "accuracy_per_fold": [round(r.accuracy, 6) for r in self.results],
                "macro_f1_per_fold": [round(r.macro_f1, 6) for r in self.results],
                "n_per_fold": [r.n for r in self.results], "labels": list(self.labels),
                "confusion": self.confusion.tolist(), "confusions": [c.to_dict() for c in self.confusions()]}


@dataclass(frozen=True)
class FoldRuns:
    """The K trained folds of one setting: their specs (``OUT/fold-K/best.json``) and test scores."""

    out: Path
    specs: tuple[Path, ...]
    summary: FoldSummary


def fold_dir(out: str | Path, fold: int) -> Path:
    """Where fold ``fold`` of a run in ``out`` lives."""
    return Path(out) / f"fold-{fold}"


def summarise_specs(specs: Sequence[Path]) -> FoldSummary:
    """The test-fold results recorded in the specs of trained folds."""
    from fer.models import ModelSpec

    results = []
    for path in specs:
        spec = ModelSpec.load(path)
        if not spec.evaluation:
            raise InputError(f"{path}: the test fold is empty; use more subjects or fewer folds")
        results.append(EvaluationResult.from_dict(spec.evaluation))
    return FoldSummary(tuple(results))


def train_all_folds(config: TrainConfig) -> FoldRuns:
    """Train every fold of ``config`` (its ``fold`` is ignored) into ``OUT/fold-0`` … and write
    ``OUT/folds.json``; folds already finished with the same settings are reused (``resume``).

    Raises:
        InputError: a dataset with a fixed split (FER2013's Usage column) has no folds.
    """
    from fer.research.train import train

    if config.dataset == "fer2013":
        raise InputError("fer2013 has its own fixed split (its Usage column), not folds: train without --all-folds")
    resolved = config.resolved()
    out = Path(resolved.out or "runs")
    specs = tuple(train(dataclasses.replace(resolved, fold=fold, out=str(fold_dir(out, fold))))
                  for fold in range(resolved.folds))
    summary = summarise_specs(specs)
    if dist.context().main:
        (out / "folds.json").write_text(json.dumps({"config": resolved.to_dict(), "test": summary.to_dict(),
                                                    "specs": [str(p) for p in specs]}, indent=2) + "\n")
    return FoldRuns(out, specs, summary)


def format_summary(runs: FoldRuns) -> str:
    """Plain text: mean ± std over folds, per-fold accuracies, most frequent confusions."""
    from fer.research.human import confusion_lines

    s = runs.summary
    (acc, acc_sd), (f1, f1_sd) = s.accuracy, s.macro_f1
    lines = [f"{len(s.results)} folds in {runs.out}: test accuracy {100 * acc:.2f} ± {100 * acc_sd:.2f} %, "
             f"macro F1 {f1:.3f} ± {f1_sd:.3f} (mean ± sample std over folds)",
             "per fold: " + ", ".join(f"{100 * r.accuracy:.2f} % (n={r.n})" for r in s.results),
             "most frequent confusions (all test folds):"]
    return "\n".join(lines + [f"  {line}" for line in confusion_lines(s.confusions())] + [f"summary: {runs.out / 'folds.json'}"])
