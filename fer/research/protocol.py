"""The paper's experimental protocol on data the user holds: within-dataset accuracy on RaFD and
CFEE (subject-independent test fold), cross-dataset accuracy both ways (train on one, test on all of
the other over the shared labels), each with and without saliency-weighted input; a markdown table
beside the paper's numbers, and a confusion plot per result.

    python -m fer protocol --rafd RaFD/ --cfee CFEE/ --backbone alexnet --saliency face-prior

Runs already finished in ``--out`` are reused (training resumes), so an interrupted protocol can be
started again with the same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fer.errors import InputError
from fer.models import ModelSpec, load_model
from fer.research.datasets import load_dataset
from fer.research.evaluate import EvaluationResult, evaluate, plot_confusion
from fer.research.train import TrainConfig, train

#: Top-1 test accuracies the paper reports (Mavani et al. 2017), in percent, keyed by
#: (train dataset, test dataset, with saliency input). As reported, not measured here.
PAPER_ACCURACY: dict[tuple[str, str, bool], float] = {
    ("rafd", "rafd", False): 95.71,
    ("cfee", "cfee", False): 74.79,
}
#: The paper's best cross-dataset result (with saliency input); it does not say which direction
#: scored it, so it stands beside both cross-dataset rows with saliency.
PAPER_CROSS_WITH_SALIENCY = 65.39

DATASET_TITLES = {"rafd": "RaFD", "cfee": "CFEE"}


@dataclass(frozen=True)
class ProtocolRow:
    """One result of the protocol (accuracy and macro F1 in [0, 1])."""

    train: str
    test: str
    saliency: str
    split: str
    n: int
    accuracy: float
    macro_f1: float
    labels: tuple[str, ...]
    model: str
    plot: str

    @property
    def paper(self) -> float | None:
        """The paper's number for this setting, in percent, or None."""
        with_saliency = self.saliency != "none"
        if self.train != self.test and with_saliency:
            return PAPER_CROSS_WITH_SALIENCY
        return PAPER_ACCURACY.get((self.train, self.test, with_saliency))


def run_protocol(
    rafd: str | Path,
    cfee: str | Path,
    *,
    saliency: str = "face-prior",
    out: str | Path = "runs/protocol",
    base: TrainConfig | None = None,
) -> list[ProtocolRow]:
    """Run the protocol and write ``OUT/protocol.md``, ``OUT/protocol.json`` and confusion plots.

    Args:
        rafd, cfee: dataset folders (CFEE may be a ``path,label[,subject]`` CSV).
        saliency: the saliency predictor for the "with saliency" runs.
        out: output folder; each training run goes to ``OUT/<dataset>-<saliency>``.
        base: training settings shared by all runs (backbone, epochs, folds, …); its dataset, root,
            saliency and out are replaced per run.
    Returns:
        8 rows: {RaFD, CFEE} → {same, other} × {no saliency, ``saliency``}.
    """
    if saliency == "none":
        raise InputError("the protocol compares with and without saliency: name a saliency predictor")
    out = Path(out)
    base = base or TrainConfig(dataset="rafd", root=str(rafd))
    roots = {"rafd": str(rafd), "cfee": str(cfee)}
    rows: list[ProtocolRow] = []
    for mode in ("none", saliency):
        models: dict[str, Path] = {}
        for name in ("rafd", "cfee"):
            config = dataclasses.replace(base, dataset=name, root=roots[name], saliency=mode,
                                         out=str(out / f"{name}-{mode}"), name=None, resume=True)
            models[name] = train(config)
        for train_name, test_name in (("rafd", "rafd"), ("cfee", "cfee"), ("rafd", "cfee"), ("cfee", "rafd")):
            plot = out / f"{train_name}-on-{test_name}-{mode}.png"
            if train_name == test_name:
                spec = ModelSpec.load(models[train_name])
                if not spec.evaluation:
                    raise InputError(f"{train_name}: the test fold is empty; use more subjects or fewer folds")
                result = EvaluationResult.from_dict(spec.evaluation)
                split = f"test fold {base.fold} of {base.folds}"
            else:
                config = dataclasses.replace(base, dataset=test_name, root=roots[test_name])
                data = load_dataset(test_name, roots[test_name], assume_cropped=config.assume_cropped,
                                    angles=config.angles, gazes=config.gazes, subset=config.cfee_subset,
                                    subject_pattern=config.subject_pattern)
                result = evaluate(load_model(models[train_name]), data, margin=config.margin,
                                  cache_dir=config.cache_dir, batch_size=config.batch_size,
                                  saliency_weights=config.saliency_weights, progress=config.progress)
                split = "all images"
            title = f"{DATASET_TITLES[train_name]} → {DATASET_TITLES[test_name]}, saliency {mode}"
            plot_confusion(result, plot, title=title)
            rows.append(ProtocolRow(train_name, test_name, mode, split, result.n, result.accuracy,
                                    result.macro_f1, result.labels, result.model, plot.name))
    out.mkdir(parents=True, exist_ok=True)
    (out / "protocol.md").write_text(protocol_table(rows, base) + "\n")
    (out / "protocol.json").write_text(json.dumps(
        {"config": base.to_dict(), "saliency": saliency,
         "rows": [{**dataclasses.asdict(r), "labels": list(r.labels), "paper": r.paper} for r in rows]},
        indent=2) + "\n")
    return rows


def protocol_table(rows: Sequence[ProtocolRow], base: TrainConfig | None = None) -> str:
    """Markdown table of the rows beside the paper's numbers."""
    lines = [
        "| Train → test | Saliency input | Test data | n | Accuracy (here) | Macro F1 | Paper (reported) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        paper = f"{r.paper:.2f} %" if r.paper is not None else "—"
        lines.append(
            f"| {DATASET_TITLES.get(r.train, r.train)} → {DATASET_TITLES.get(r.test, r.test)} | {r.saliency} | "
            f"{r.split} | {r.n} | {100 * r.accuracy:.2f} % | {r.macro_f1:.3f} | {paper} |"
        )
    notes = [
        "",
        "Paper: Mavani, Raman & Miyapuram, ICCV-W 2017 — CaffeNet fine-tuned on each dataset; saliency from "
        f"ML-Net. Its {PAPER_CROSS_WITH_SALIENCY} % is the best cross-dataset top-1 with saliency input, "
        "direction not stated. Cross-dataset rows score the shared labels only.",
    ]
    if base is not None:
        config = base.resolved()
        notes.append(
            f"Here: backbone {config.backbone} ({'ImageNet' if config.pretrained else 'random'} init), "
            f"{config.epochs} epochs, {config.optimizer}, subject-independent {config.folds}-fold split "
            f"(test fold {config.fold}, seed {config.seed}), saliency floor {config.saliency_floor}."
        )
    return "\n".join(lines + notes)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``protocol``."""
    from fer.models import ARCHITECTURES, available_architectures
    from fer.research.train import RECIPES, saliency_choices

    parser.add_argument("--rafd", type=Path, required=True, metavar="DIR", help="RaFD images (its file names)")
    parser.add_argument("--cfee", type=Path, required=True, metavar="DIR",
                        help="CFEE: category folders, or a path,label[,subject] CSV")
    parser.add_argument("--backbone", choices=available_architectures(), default="alexnet", metavar="NAME",
                        help="; ".join(f"{n}: {ARCHITECTURES[n].description}" for n in available_architectures())
                        + " (default: %(default)s)")
    saliency = {k: v for k, v in saliency_choices().items() if k != "none"}
    parser.add_argument("--saliency", choices=list(saliency), default="face-prior", metavar="NAME",
                        help="predictor for the runs with saliency input: "
                        + "; ".join(f"{n} ({s})" for n, s in saliency.items()) + " (default: %(default)s)")
    parser.add_argument("--saliency-floor", type=float, default=0.0, help="(default: %(default)s, the paper's product)")
    parser.add_argument("--saliency-weights", metavar="FILE", help="weights for a predictor that needs them (mlnet)")
    parser.add_argument("--out", type=Path, default=Path("runs/protocol"), help="(default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="default: the backbone's recipe")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    parser.add_argument("--optimizer", choices=list(RECIPES))
    parser.add_argument("--lr", type=float)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false")
    parser.add_argument("--folds", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--fold", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--cfee-subset", choices=["basic", "all"], default="basic",
                        help="CFEE classes (default: %(default)s; cross-dataset uses the shared ones anyway)")
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
        folds=args.folds, fold=args.fold, seed=args.seed, assume_cropped=args.crops, margin=args.margin,
        cache_dir=str(args.cache_dir) if args.cache_dir else None, angles=angles, cfee_subset=args.cfee_subset,
        subject_pattern=args.subject_pattern, device=args.device, progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``protocol``: prints the table, writes it to ``OUT/protocol.md``."""
    rows = run_protocol(args.rafd, args.cfee, saliency=args.saliency, out=args.out, base=config_from_args(args))
    print(protocol_table(rows, config_from_args(args)))
    print(f"\nwritten: {args.out / 'protocol.md'}, {args.out / 'protocol.json'} and confusion plots in {args.out}")
    return 0
