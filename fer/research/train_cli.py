"""The ``train`` command: its options, the `fer.research.recipes.TrainConfig` they make, and the
summary printed after a run. Kept apart from `fer.research.train`, which imports torch and is
imported only when the command runs, so that ``python -m fer train --help`` stays light.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fer.backbones import BUILTIN
from fer.research import distributed as dist
from fer.research.evaluate import EvaluationResult
from fer.research.recipes import PRETRAINED_LR_SCALE, RECIPES, TrainConfig


def saliency_choices() -> dict[str, str]:
    """Saliency input modes: "none" plus every registered predictor, with its status."""
    from fer.saliency import saliency_status

    return {"none": "plain face crops", **saliency_status()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``train``."""
    from fer.research.datasets import add_dataset_arguments

    parser.add_argument("--config", type=Path, metavar="TOML",
                        help="read options from a TOML file: keys are the long option names with '_' "
                        "(batch_size = 16, no_pretrained = true, angles = [90, 45]); flags given here override it")
    parser.add_argument("--from-spec", type=Path, metavar="JSON",
                        help="re-run the run a model spec records (runs/X/best.json): its settings, same run "
                        "identity; flags given here override them (e.g. --out)")
    add_dataset_arguments(parser, required=False)  # --config or --from-spec may give them; checked in run
    backbones = sorted(BUILTIN)  # what fer.models.ARCHITECTURES holds, read without importing torch
    parser.add_argument("--backbone", choices=backbones, default="alexnet", metavar="NAME",
                        help="network: " + "; ".join(f"{n} ({BUILTIN[n].description})" for n in backbones)
                        + " (default: %(default)s, the paper's)")
    saliency = saliency_choices()
    parser.add_argument("--saliency", choices=list(saliency), default="none", metavar="NAME",
                        help="feed the CNN face x saliency map (the paper's method): "
                        + "; ".join(f"{n} ({status})" for n, status in saliency.items()) + " (default: %(default)s)")
    parser.add_argument("--saliency-floor", type=float, default=0.0,
                        help="brightness kept where saliency is 0, in [0, 1] (default: %(default)s, the paper's product)")
    parser.add_argument("--saliency-weights", metavar="FILE", help="weights for a predictor that needs them (mlnet)")
    parser.add_argument("--classes", metavar="LIST",
                        help="train on these labels only, comma-separated (e.g. the classes two datasets share)")
    parser.add_argument("--epochs", type=int, help="default: 30 (sgd) / 20 (adamw)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="global batch: with N processes (torchrun) each takes 1/N (default: %(default)s)")
    parser.add_argument("--optimizer", choices=list(RECIPES), help="default: sgd for alexnet (the paper's), adamw otherwise")
    parser.add_argument("--lr", type=float, help="learning rate of the new classifier; pretrained layers get "
                        f"{PRETRAINED_LR_SCALE}x (default: 0.01 sgd / 0.001 adamw)")
    parser.add_argument("--weight-decay", type=float, help="default: 5e-4 sgd / 0.05 adamw")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="start from random weights instead of ImageNet ones")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="no flips or crops")
    parser.add_argument("--input-size", type=int, help="network input side in pixels (default: the backbone's)")
    parser.add_argument("--folds", type=int, default=5, help="subject-independent folds (default: %(default)s)")
    parser.add_argument("--fold", type=int, default=0,
                        help="test fold; the next one validates (default: %(default)s)")
    parser.add_argument("--all-folds", action="store_true",
                        help="train every fold in turn (OUT/fold-K) and report mean ± std over folds")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="raise the learning rate linearly, step by step, over the first N epochs (default: none)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing (default: 0)")
    parser.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the global gradient norm (default: none)")
    parser.add_argument("--ema", type=float, dest="ema_decay", metavar="DECAY",
                        help="validate, test and save a moving average of the weights, e.g. 0.999 (default: none)")
    parser.add_argument("--compile", action="store_true", help="run the network through torch.compile")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda (default: %(default)s)")
    parser.add_argument("--amp", choices=list(dist.AMP_MODES), default="auto",
                        help="mixed precision on CUDA: auto is bf16 where supported, else fp16; always off on the "
                        "CPU (default: %(default)s)")
    parser.add_argument("--workers", type=int, help="DataLoader processes preparing batches (default: 4 on CUDA, 0 on CPU)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/DATASET-BACKBONE[-SALIENCY])")
    parser.add_argument("--name", help="model name written in the spec (default: the output folder's name pattern)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last epoch (only if every setting is the same)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _track_explicit(parser)


def _track_explicit(parser: argparse.ArgumentParser) -> None:
    """Make every option record in ``namespace.explicit`` that it was given, so that files read later
    (--config, --from-spec) fill in only what the command line left out."""
    for action in parser._actions:  # argparse's action list: stable since Python 2.7
        if isinstance(action, argparse._HelpAction):
            continue
        base = type(action)

        def call(self: argparse.Action, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None, base: type = base) -> None:
            namespace.explicit = {*getattr(namespace, "explicit", ()), self.dest}
            base.__call__(self, parser, namespace, values, option_string)

        action.__class__ = type(f"Explicit{base.__name__}", (base,), {"__call__": call})
    parser.set_defaults(explicit=set())


#: Spec ``training`` fields that are not options to repeat when re-running it (where this
#: machine keeps things, how it shows progress), and fields whose option has another name.
_NOT_REPEATED = frozenset({"out", "resume", "progress", "cache_dir", "workers", "device"})
_OPTION_OF = {"assume_cropped": "crops", "usages": "usage", "ema_decay": "ema"}


def spec_options(spec_path: Path) -> dict[str, Any]:
    """The settings a model spec's ``training`` record holds, as ``--config`` keys (option names with '_').

    Raises:
        InputError: no such spec, or one without a training record.
    """
    from fer.errors import InputError
    from fer.models import ModelSpec

    try:
        training = ModelSpec.load(spec_path).training
    except (OSError, ValueError) as exc:
        raise InputError(f"--from-spec: cannot read {spec_path}: {exc}") from None
    if not training:
        raise InputError(f"--from-spec: {spec_path} records no training run")
    import dataclasses

    options: dict[str, Any] = {}
    for field in dataclasses.fields(TrainConfig):
        name, value = field.name, training.get(field.name)
        if name in _NOT_REPEATED or name not in training:
            continue
        if name in ("pretrained", "augment"):
            options[f"no_{name}"] = value is False
        elif name in ("angles", "gazes", "usages"):
            options[_OPTION_OF.get(name, name)] = "all" if value is None else value
        elif value is not None:
            options[_OPTION_OF.get(name, name)] = value
    return options


def _tokens(options: dict[str, Any], parser: argparse.ArgumentParser, source: str) -> list[str]:
    """Command-line tokens for ``--config`` keys (``batch_size = 16`` → ``--batch-size 16``)."""
    from fer.errors import InputError

    by_option = {o[2:]: a for a in parser._actions for o in a.option_strings if o.startswith("--")}
    tokens: list[str] = []
    for key, value in options.items():
        option = key.replace("_", "-")
        action = by_option.get(option)
        if action is None or option in ("config", "from-spec", "help"):
            raise InputError(f"{source}: unknown key {key!r} (keys are train's long option names with '_')")
        if action.nargs == 0:  # a switch: true gives it, false leaves it out
            if not isinstance(value, bool):
                raise InputError(f"{source}: {key} must be true or false, not {value!r}")
            tokens += [f"--{option}"] if value else []
        elif isinstance(value, list | tuple):
            tokens += [f"--{option}", ",".join(str(v) for v in value)]
        else:
            tokens += [f"--{option}", str(value)]
    return tokens


def merge_files(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``args`` with what ``--from-spec`` and then ``--config`` say filled in wherever the command line
    gave nothing (command line > --config > --from-spec > defaults).

    Raises:
        InputError: unreadable file, unknown key, or a value the option refuses.
    """
    import tomllib

    from fer.errors import InputError

    layers: list[tuple[str, dict[str, Any]]] = []
    if getattr(args, "from_spec", None):
        layers.append((f"--from-spec {args.from_spec}", spec_options(args.from_spec)))
    if getattr(args, "config", None):
        try:
            layers.append((f"--config {args.config}", tomllib.loads(Path(args.config).read_text(encoding="utf-8"))))
        except OSError as exc:
            raise InputError(f"--config: cannot read {args.config}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"--config {args.config}: not valid TOML: {exc}") from None
    merged = argparse.Namespace(**vars(args))
    for source, options in layers:
        try:
            layer = parser.parse_args(_tokens(options, parser, source))
        except SystemExit:  # argparse already printed which value it refused
            raise InputError(f"{source}: a value is not one its option accepts (see above)") from None
        for dest in layer.explicit:
            if dest not in args.explicit:
                setattr(merged, dest, getattr(layer, dest))
    if not merged.dataset or not merged.root:
        raise InputError("train needs --dataset and --root (on the command line, in --config or from --from-spec)")
    return merged


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """`TrainConfig` from parsed ``train`` options."""
    from fer.research.datasets import RAFD_ANGLES, dataset_options, list_option

    options = dataset_options(args)
    if args.dataset == "rafd" and options["angles"] is None:
        options["angles"] = list(RAFD_ANGLES)
    tuple_or_none = lambda v: tuple(v) if v is not None else None  # noqa: E731
    return TrainConfig(
        dataset=args.dataset, root=str(args.root), backbone=args.backbone, saliency=args.saliency,
        saliency_floor=args.saliency_floor, saliency_weights=args.saliency_weights, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
        pretrained=args.pretrained, augment=args.augment, input_size=args.input_size, folds=args.folds,
        fold=args.fold, seed=args.seed, assume_cropped=options["assume_cropped"], margin=args.margin,
        cache_dir=str(args.cache_dir) if args.cache_dir else None, angles=tuple_or_none(options["angles"]),
        gazes=tuple_or_none(options["gazes"]), cfee_subset=args.cfee_subset, subject_pattern=args.subject_pattern,
        usages=tuple_or_none(options["usages"]), classes=tuple_or_none(list_option(args.classes, "classes")),
        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing, grad_clip=args.grad_clip,
        ema_decay=args.ema_decay, compile=args.compile, amp=args.amp, workers=args.workers, device=args.device, out=str(args.out) if args.out else None,
        name=args.name, resume=args.resume, progress=not args.quiet,
    )


def summary(spec_path: Path) -> str:
    """One paragraph about a finished run: where the model is and how it scored."""
    from fer.models import ModelSpec
    from fer.research.human import confusion_lines

    spec = ModelSpec.load(spec_path)
    lines = [f"saved {spec_path} ({spec.architecture}, labels: {', '.join(spec.labels)})"]
    training: Mapping[str, Any] = spec.training or {}
    if training.get("best_val_accuracy") is not None:
        lines.append(f"best validation accuracy {training['best_val_accuracy']:.2%} at epoch {training['best_epoch']}")
    if spec.evaluation:
        result = EvaluationResult.from_dict(spec.evaluation)
        lines.append(f"test accuracy {result.accuracy:.2%}, macro F1 {result.macro_f1:.4f} (n={result.n})")
        lines += ["most frequent confusions (test split):"] + [f"  {line}" for line in confusion_lines(result.confusions())]
    if training.get("skipped_count"):
        lines.append(f"{training['skipped_count']} image(s) skipped (see 'training.skipped' in the spec)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``train`` (every fold with ``--all-folds``); rank 0 alone prints."""
    from fer.pipeline import resolve_device

    if getattr(args, "config", None) or getattr(args, "from_spec", None):
        from fer.cli import build_parser

        commands = next(a for a in build_parser("train")._actions if a.dest == "command").choices
        train_parser: argparse.ArgumentParser = commands["train"]  # type: ignore[index]
        args = merge_files(args, train_parser)
    elif not args.dataset or not args.root:
        from fer.errors import InputError

        raise InputError("train needs --dataset and --root (or --config / --from-spec naming them)")
    config = config_from_args(args)
    from fer.research.preemption import Preempted

    with dist.process_group(resolve_device(config.device)) as ctx:
        try:
            if args.all_folds:
                from fer.research.folds import format_summary, train_all_folds

                text = format_summary(train_all_folds(config))
            else:
                from fer.research.train import train

                text = summary(train(config))
        except Preempted as stopped:
            if ctx.main:
                import sys

                print(f"{stopped}: checkpoint saved at that step; the same command with --resume continues "
                      "it exactly", file=sys.stderr)
            return 128 + stopped.signum
    if ctx.main:
        print(text)
    return 0
