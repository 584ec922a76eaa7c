"""The paper's experimental protocol on data the user holds: within-dataset accuracy on RaFD and
CFEE over every subject-independent fold, cross-dataset accuracy both ways (train on one, test on
all of the other), each with and without saliency-weighted input; a markdown table (mean ± standard
deviation over folds) beside the paper's numbers where they are comparable, the most frequent
confusions of every row, and a confusion plot per row.

    python -m fer protocol --rafd RaFD/ --cfee CFEE/ --backbone alexnet --saliency face-prior

Cross-dataset rows follow the paper: the model is trained on the classes the two datasets share
(RaFD without contempt). Where a dataset has more classes than are shared, its all-classes model is
also scored on the other dataset with probabilities renormalised over the shared labels, as a second
row. Finished folds in ``--out`` with the same settings are reused; other settings are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer.errors import InputError
from fer.research import distributed as dist
from fer.research.datasets import Dataset, load_dataset, restrict_labels
from fer.research.evaluate import EvaluationResult, evaluate, plot_confusion
from fer.research.folds import FoldRuns, FoldSummary, train_all_folds
from fer.research.recipes import TrainConfig
from fer.research.stats import Paired, paired_difference

#: Top-1 test accuracies the paper reports (Mavani et al. 2017), in percent, keyed by
#: (train dataset, test dataset, with saliency input). As reported, not measured here.
PAPER_ACCURACY: dict[tuple[str, str, bool], float] = {
    ("rafd", "rafd", False): 95.71,
    ("cfee", "cfee", False): 74.79,
}
#: The paper's best cross-dataset result, with ML-Net saliency input; it does not say which
#: direction scored it, so it stands beside both cross-dataset rows with ML-Net saliency.
PAPER_CROSS_WITH_SALIENCY = 65.39
#: What the paper's numbers were measured with: CaffeNet fine-tuned from ImageNet, ML-Net saliency.
#: CaffeNet is not built here; torchvision's AlexNet is the nearest backbone (`comparability` says so).
PAPER_BACKBONE = "alexnet"
PAPER_SALIENCY = "mlnet"

DATASET_TITLES = {"rafd": "RaFD", "cfee": "CFEE"}


@dataclass(frozen=True)
class ProtocolRow:
    """One result of the protocol: scores over folds (accuracy and macro F1 in [0, 1]).

    ``classes``: "all" (within-dataset), "common" (trained on the shared classes) or "all,
    renormalised" (the all-classes model scored over the shared labels). ``n``: images scored per
    fold model (within-dataset: all test folds together).
    """

    train: str
    test: str
    saliency: str
    classes: str
    split: str
    folds: int
    n: int
    accuracy: tuple[float, float]
    macro_f1: tuple[float, float]
    labels: tuple[str, ...]
    plot: str
    confusions: tuple[dict[str, Any], ...] = ()
    accuracy_per_fold: tuple[float, ...] = ()
    comparable: str = field(default="", compare=False)

    @property
    def paper(self) -> float | None:
        """The paper's number for this setting, in percent, or None. Shown only where the saliency
        input is the paper's (none, or ML-Net); other predictors have no paper figure to compare with."""
        if self.saliency not in ("none", PAPER_SALIENCY):
            return None
        if self.train != self.test:
            return PAPER_CROSS_WITH_SALIENCY if self.saliency == PAPER_SALIENCY and self.classes == "common" else None
        return PAPER_ACCURACY.get((self.train, self.test, self.saliency != "none"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the paper's figure."""
        return {**dataclasses.asdict(self), "labels": list(self.labels), "accuracy": list(self.accuracy),
                "macro_f1": list(self.macro_f1), "paper": self.paper}


def comparability(config: TrainConfig, saliency: str) -> str:
    """Why a row with these settings is or is not comparable with the paper's figures."""
    config = config.resolved()
    reasons = []
    if config.backbone != PAPER_BACKBONE:
        reasons.append(f"backbone {config.backbone} (paper: CaffeNet)")
    if not config.pretrained:
        reasons.append("random init (paper: ImageNet)")
    if saliency not in ("none", PAPER_SALIENCY):
        reasons.append(f"saliency {saliency} (paper: ML-Net)")
    if reasons:
        return "no: " + "; ".join(reasons)
    # torchvision's AlexNet is the one-tower 2014 variant, not Caffe's reference CaffeNet.
    return ("nearest, not equal: torchvision AlexNet (64-192-384-256-256 filters, no LRN, its own ImageNet weights "
            "and preprocessing) for the paper's CaffeNet (96-256-384-384-256, LRN); its split and epochs unknown")


def _row(summary: FoldSummary, train: str, test: str, saliency: str, classes: str, split: str, n: int, plot: Path,
         comparable: str) -> ProtocolRow:
    if dist.context().main:
        title = f"{DATASET_TITLES[train]} → {DATASET_TITLES[test]}, saliency {saliency}, {classes} classes"
        total = EvaluationResult(summary.labels, summary.confusion, dataset=test)
        plot_confusion(total, plot, title=f"{title}\nsummed over {len(summary.results)} fold models")
    return ProtocolRow(train, test, saliency, classes, split, len(summary.results), n, summary.accuracy,
                       summary.macro_f1, summary.labels, plot.name, tuple(c.to_dict() for c in summary.confusions()),
                       tuple(round(r.accuracy, 6) for r in summary.results), comparable)


def _cross(runs: FoldRuns, data: Dataset, config: TrainConfig) -> FoldSummary:
    """Every fold model of ``runs`` scored on all of ``data``."""
    from fer.models import load_network
    from fer.pipeline import resolve_device

    device = dist.device_for(resolve_device(config.device), dist.context())
    return FoldSummary(tuple(
        evaluate(load_network(spec, device=device, engine="torch"), data, margin=config.margin,
                 cache_dir=config.cache_dir, batch_size=config.batch_size, saliency_weights=config.saliency_weights,
                 progress=config.progress)
        for spec in runs.specs))


def run_protocol(
    rafd: str | Path,
    cfee: str | Path,
    *,
    saliency: str = "face-prior",
    out: str | Path = "runs/protocol",
    base: TrainConfig | None = None,
    seeds: int = 1,
) -> list[ProtocolRow]:
    """Run the protocol over every fold and write ``OUT/protocol.md``, ``OUT/protocol.json`` and a
    confusion plot per row.

    Args:
        rafd, cfee: dataset folders (CFEE may be a ``path,label[,subject]`` CSV).
        saliency: the saliency predictor for the "with saliency" runs.
        out: output folder; the folds of each training setting go to ``OUT/<dataset>-<saliency>[-common]/fold-K``
            (other seeds than the base one: ``…-seedS``).
        base: training settings shared by all runs (backbone, epochs, folds, …); its dataset, root,
            saliency, classes, fold and out are set per run.
        seeds: train every setting with seeds ``base.seed … base.seed + seeds - 1``; the rows are the
            base seed's, the paired statistics (`paired_rows`) use every seed.
    Returns:
        Per saliency mode (none, then ``saliency``): RaFD → RaFD, CFEE → CFEE, RaFD → CFEE and
        CFEE → RaFD on the common classes, then a renormalised row for each dataset with more classes
        than the two share.
    """
    if saliency == "none":
        raise InputError("the protocol compares with and without saliency: name a saliency predictor")
    if seeds < 1:
        raise InputError(f"seeds must be at least 1, got {seeds}")
    out = Path(out)
    base = base or TrainConfig(dataset="rafd", root=str(rafd))
    roots = {"rafd": str(rafd), "cfee": str(cfee)}
    data = {name: load_dataset(name, roots[name], assume_cropped=base.assume_cropped, angles=base.angles,
                               gazes=base.gazes, subset=base.cfee_subset, subject_pattern=base.subject_pattern)
            for name in roots}
    shared = tuple(label for label in data["rafd"].defined_labels if label in data["cfee"].defined_labels)
    if not shared:
        raise InputError("RaFD and CFEE share no class here; check --cfee-subset and the folder names")
    every_seed: list[list[ProtocolRow]] = []
    for k in range(seeds):
        seeded = dataclasses.replace(base, seed=base.seed + k)
        tag = f"-seed{seeded.seed}" if k else ""
        every_seed.append([row for mode in ("none", saliency)
                           for row in _mode_rows(seeded, mode, roots, data, shared, out, tag)])
    rows = every_seed[0]
    paired = paired_rows(every_seed, saliency)
    if dist.context().main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "protocol.md").write_text(protocol_table(rows, base, paired) + "\n")
        (out / "protocol.json").write_text(json.dumps(
            {"config": base.to_dict(), "saliency": saliency, "shared_labels": list(shared), "seeds": seeds,
             "rows": [r.to_dict() for r in rows], "paired": [p.to_dict() for p in paired]}, indent=2) + "\n")
    return rows


def _mode_rows(base: TrainConfig, mode: str, roots: dict[str, str], data: dict[str, Dataset], shared: tuple[str, ...],
               out: Path, tag: str) -> list[ProtocolRow]:
    """The protocol's rows for one saliency ``mode`` and one seed (``tag`` names other seeds' folders)."""
    comparable = comparability(base, mode)

    def folds(name: str, classes: tuple[str, ...] | None, suffix: str = "") -> FoldRuns:
        config = dataclasses.replace(base, dataset=name, root=roots[name], saliency=mode, classes=classes,
                                     out=str(out / f"{name}-{mode}{suffix}{tag}"), name=None, resume=True)
        return train_all_folds(config)

    rows = []
    full = {name: folds(name, None) for name in roots}
    # A dataset whose images are all of shared classes trains the same model either way.
    common = {name: full[name] if set(data[name].labels) <= set(shared) else folds(name, shared, "-common")
              for name in roots}
    for name in roots:
        summary = full[name].summary
        rows.append(_row(summary, name, name, mode, "all", f"test folds ({base.folds})", sum(r.n for r in summary.results),
                         out / f"{name}-on-{name}-{mode}{tag}.png", comparable))
    for train_name, test_name in (("rafd", "cfee"), ("cfee", "rafd")):
        test_data = restrict_labels(data[test_name], shared)
        summary = _cross(common[train_name], test_data, base)
        rows.append(_row(summary, train_name, test_name, mode, "common", "all images", summary.results[0].n,
                         out / f"{train_name}-on-{test_name}-{mode}-common{tag}.png", comparable))
    for train_name, test_name in (("rafd", "cfee"), ("cfee", "rafd")):
        if common[train_name] is not full[train_name]:
            summary = _cross(full[train_name], data[test_name], base)
            rows.append(_row(summary, train_name, test_name, mode, "all, renormalised", "all images",
                             summary.results[0].n, out / f"{train_name}-on-{test_name}-{mode}-renormalised{tag}.png",
                             comparable))
    return rows


@dataclass(frozen=True)
class PairedRow:
    """The saliency effect for one row of the protocol: accuracy with minus without saliency, paired
    by fold (and seed), which share subjects, split, initial weights and data order."""

    train: str
    test: str
    classes: str
    saliency: str
    without: float
    with_saliency: float
    paired: Paired

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the row's keys, the two mean accuracies and ``paired`` (`fer.research.stats.Paired.to_dict`)."""
        return {"train": self.train, "test": self.test, "classes": self.classes, "saliency": self.saliency,
                "accuracy_without": round(self.without, 6), "accuracy_with": round(self.with_saliency, 6),
                "paired": self.paired.to_dict()}


def paired_rows(every_seed: Sequence[Sequence[ProtocolRow]], saliency: str) -> list[PairedRow]:
    """Pair each row without saliency with the row of the same train/test/classes with ``saliency``,
    over the folds of every seed (``every_seed[k]``: the rows of seed k)."""
    pairs = []
    for row in every_seed[0]:
        if row.saliency != "none":
            continue
        key = (row.train, row.test, row.classes)

        def per_seed(mode: str, key: tuple[str, str, str] = key) -> list[tuple[float, ...]]:
            return [next(r.accuracy_per_fold for r in rows if (r.train, r.test, r.classes, r.saliency) == (*key, mode))
                    for rows in every_seed]

        without, with_saliency = per_seed("none"), per_seed(saliency)
        pairs.append(PairedRow(row.train, row.test, row.classes, saliency, float(np.mean(without)),
                               float(np.mean(with_saliency)), paired_difference(with_saliency, without)))
    return pairs


def _pm(value: tuple[float, float], scale: float = 100.0, digits: int = 2) -> str:
    return f"{scale * value[0]:.{digits}f} ± {scale * value[1]:.{digits}f}"


def protocol_table(rows: Sequence[ProtocolRow], base: TrainConfig | None = None,
                   paired: Sequence[PairedRow] = ()) -> str:
    """Markdown: the table beside the paper's numbers, the saliency effect with its 95 % interval,
    each row's most frequent confusions, notes."""
    from fer.metrics import Confusion
    from fer.research.human import describe
    from fer.research.human import notes as human_notes

    lines = [
        "| Train → test | Saliency input | Classes | Test data | Folds | n | Accuracy % (mean ± std) | Macro F1 | "
        "Paper (reported) | Comparable with the paper |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        paper = f"{r.paper:.2f} %" if r.paper is not None else "—"
        lines.append(
            f"| {DATASET_TITLES.get(r.train, r.train)} → {DATASET_TITLES.get(r.test, r.test)} | {r.saliency} | "
            f"{r.classes} | {r.split} | {r.folds} | {r.n} | {_pm(r.accuracy)} | {_pm(r.macro_f1, 1.0, 3)} | "
            f"{paper} | {r.comparable} |"
        )
    if paired:
        lines += ["", "## Saliency effect (with minus without, paired by fold)", "",
                  "| Train → test | Classes | Without % | With % | Difference, points (95 % CI) | p | Test |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for p in paired:
            d = p.paired
            interval = "—" if np.isnan(d.ci95[0]) else f"[{100 * d.ci95[0]:+.2f}, {100 * d.ci95[1]:+.2f}]"
            p_text = "—" if np.isnan(d.p_value) else f"{d.p_value:.3g}"
            lines.append(f"| {DATASET_TITLES.get(p.train, p.train)} → {DATASET_TITLES.get(p.test, p.test)} | "
                         f"{p.classes} | {100 * p.without:.2f} | {100 * p.with_saliency:.2f} | "
                         f"{100 * d.mean_difference:+.2f} {interval} | {p_text} | {d.test} |")
        lines += ["", f"Saliency input: {paired[0].saliency}. With few folds the interval is wide; an interval "
                  "that holds 0 is no evidence of an effect either way."]
    lines += ["", "## Most frequent confusions", "",
              "Summed over the fold models of each row; rates are of the true class."]
    every: list[Confusion] = []
    for r in rows:
        confusions = [Confusion(str(c["true"]), str(c["predicted"]), int(c["count"]), float(c["rate"]),
                                None if c.get("base_rate") is None else float(c["base_rate"]))
                      for c in r.confusions]
        every += confusions
        lines += ["", f"{DATASET_TITLES.get(r.train, r.train)} → {DATASET_TITLES.get(r.test, r.test)}, saliency "
                  f"{r.saliency}, {r.classes} classes:", ""]
        lines += [f"- {describe(c)}" for c in confusions] or ["- none"]
    lines += [""] + human_notes(every)
    notes = [
        "",
        "Paper: Mavani, Raman & Miyapuram, ICCV-W 2017 — CaffeNet fine-tuned on each dataset; saliency from "
        f"ML-Net. Its {PAPER_CROSS_WITH_SALIENCY} % is the best cross-dataset top-1 with ML-Net saliency input, "
        "trained on the shared classes, direction not stated; it is shown only beside ML-Net rows. Here every "
        "row is a mean over folds (sample standard deviation); the paper reports single numbers.",
    ]
    if base is not None:
        config = base.resolved()
        notes.append(
            f"Here: backbone {config.backbone} ({'ImageNet' if config.pretrained else 'random'} init), "
            f"{config.epochs} epochs, {config.optimizer}, subject-independent {config.folds}-fold split "
            f"(every fold tests once, seed {config.seed}), saliency floor {config.saliency_floor}."
        )
    return "\n".join(lines + notes)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``protocol``."""
    from fer.backbones import BUILTIN  # the registered architectures, without importing torch
    from fer.research.recipes import RECIPES
    from fer.research.train_cli import saliency_choices

    parser.add_argument("--rafd", type=Path, required=True, metavar="DIR", help="RaFD images (its file names)")
    parser.add_argument("--cfee", type=Path, required=True, metavar="DIR",
                        help="CFEE: category folders, or a path,label[,subject] CSV")
    parser.add_argument("--backbone", choices=sorted(BUILTIN), default="alexnet", metavar="NAME",
                        help="; ".join(f"{n}: {BUILTIN[n].description}" for n in sorted(BUILTIN))
                        + " (default: %(default)s)")
    saliency = {k: v for k, v in saliency_choices().items() if k != "none"}
    parser.add_argument("--saliency", choices=list(saliency), default="face-prior", metavar="NAME",
                        help="predictor for the runs with saliency input: "
                        + "; ".join(f"{n} ({s})" for n, s in saliency.items()) + " (default: %(default)s)")
    parser.add_argument("--saliency-floor", type=float, default=0.0, help="(default: %(default)s, the paper's product)")
    parser.add_argument("--saliency-weights", metavar="FILE", help="weights for a predictor that needs them (mlnet)")
    parser.add_argument("--out", type=Path, default=Path("runs/protocol"), help="(default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="default: the backbone's recipe")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (default: %(default)s)")
    parser.add_argument("--optimizer", choices=list(RECIPES))
    parser.add_argument("--lr", type=float)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false")
    parser.add_argument("--folds", type=int, default=5, help="subject folds, every one trained and tested (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1, metavar="K",
                        help="train every setting with K seeds (seed … seed+K-1); the saliency effect's paired "
                        "test then averages each fold over them (default: %(default)s)")
    parser.add_argument("--cfee-subset", choices=["basic", "all"], default="basic",
                        help="CFEE classes (default: %(default)s; cross-dataset rows train on the shared ones)")
    parser.add_argument("--angles", default="90", help="RaFD camera angles, comma-separated (default: %(default)s)")
    parser.add_argument("--crops", action="store_true", help="images are face crops already (no detection)")
    parser.add_argument("--subject-pattern", metavar="REGEX", help="CFEE: regex whose first group is the subject")
    parser.add_argument("--margin", type=float, help="face crop margin (default: the detector's)")
    parser.add_argument("--cache-dir", type=Path, help="face crop cache folder")
    parser.add_argument("--device", default="auto", help="(default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The shared `TrainConfig` of a protocol run."""
    try:
        angles = tuple(int(a) for a in args.angles.split(",") if a.strip())
    except ValueError:
        raise InputError(f"--angles: cannot read {args.angles!r}") from None
    return TrainConfig(
        dataset="rafd", root=str(args.rafd), backbone=args.backbone, saliency_floor=args.saliency_floor,
        saliency_weights=args.saliency_weights, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, pretrained=args.pretrained, input_size=args.input_size,
        folds=args.folds, seed=args.seed, assume_cropped=args.crops, margin=args.margin,
        cache_dir=str(args.cache_dir) if args.cache_dir else None, angles=angles, cfee_subset=args.cfee_subset,
        subject_pattern=args.subject_pattern, device=args.device, progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``protocol``: prints the table, writes it to ``OUT/protocol.md`` (rank 0 under torchrun)."""
    from fer.pipeline import resolve_device

    base = config_from_args(args)
    with dist.process_group(resolve_device(base.device)) as ctx:
        run_protocol(args.rafd, args.cfee, saliency=args.saliency, out=args.out, base=base, seeds=args.seeds)
    if ctx.main:
        print((args.out / "protocol.md").read_text().rstrip())
        print(f"\nwritten: {args.out / 'protocol.md'}, {args.out / 'protocol.json'} and confusion plots in {args.out}")
    return 0
