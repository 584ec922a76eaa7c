"""Command line: ``python -m fer COMMAND ...`` (or ``fer COMMAND ...`` once pip-installed).

Usage:
    python -m fer predict PATH... [--model NAME|PATH] [--top-k K] [--json]
                          [--saliency NAME --save-maps DIR] [--attention] [--detector short|full]
    python -m fer train --dataset rafd|cfee|fer2013|folder --root DIR --backbone NAME ...
    python -m fer evaluate --dataset ... --root DIR [--model NAME|PATH] [--json] [--plot PNG]
    python -m fer protocol --rafd DIR --cfee DIR [--backbone alexnet]
    python -m fer card NAME|PATH
    python -m fer train-saliency --images DIR --maps DIR [--fixations DIR]
    python -m fer evaluate-saliency --predictor NAME --images DIR --maps DIR
    python -m fer bench [--json] [--full]

Exit status: 0 success, 1 some input could not be processed, 2 usage error.
Errors are one line on stderr; set FER_DEBUG=1 to see tracebacks of unexpected failures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fer.errors import FerError, InputError

#: Subcommands: name → (module exposing ``add_arguments(parser)`` and ``run(args) -> int``, help). The
#: module imports no torch (its ``run`` imports what it needs), so every ``--help`` stays light.
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("fer.cli", "expressions of every face in images"),
    "train": ("fer.research.train_cli", "fine-tune an expression CNN on a dataset"),
    "evaluate": ("fer.research.evaluate", "accuracy, F1 and confusion matrix of a model on a dataset"),
    "protocol": ("fer.research.protocol", "the paper's within- and cross-dataset protocol"),
    "card": ("fer.research.card", "print a model card (spec and measured metrics) as markdown"),
    "train-saliency": ("fer.research.saliency_train_cli", "train ML-Net on a saliency dataset"),
    "evaluate-saliency": ("fer.research.saliency_metrics", "CC, KLD, NSS, SIM, AUC-Judd of a saliency predictor"),
    "bench": ("fer.bench", "per-stage speed benchmark"),
}


def _available_commands() -> dict[str, tuple[str, str]]:
    return {name: entry for name, entry in COMMANDS.items() if importlib.util.find_spec(entry[0]) is not None}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, with the options of ``command`` only: only that command's module is
    imported (none for None, so ``python -m fer --help`` imports neither torch nor a model)."""
    parser = argparse.ArgumentParser(
        prog="python -m fer",
        description="Facial expression recognition with visual saliency (Mavani et al., ICCV-W 2017).",
        epilog="Run 'python -m fer COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _available_commands().items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = sys.modules[__name__] if module_name == __name__ else importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from fer.native_logs import native_logs_filtered

    with native_logs_filtered():
        return _run_reporting_errors(args)


def _run_reporting_errors(args: argparse.Namespace) -> int:
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("FER_DEBUG") == "1":
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set FER_DEBUG=1 for details)", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- predict


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make a `fer.PipelineConfig` (all its fields but ``attention``), the same for
    every command that runs the pipeline (``predict``, ``evaluate``); `config_from_args` reads them."""
    from fer.config import DETECTOR_ENGINES, DETECTORS, ENGINES
    from fer.limits import DEFAULT_MAX_FACES, MAX_FACES

    parser.add_argument("--model", default="default", help="registered model name or checkpoint path (default: %(default)s)")
    parser.add_argument("--saliency", metavar="NAME", default=None, help="saliency predictor (see fer.available_saliency())")
    parser.add_argument("--saliency-input", choices=["auto", "on", "off"], default="auto",
                        help="feed the CNN face x saliency (the paper's method); auto = as the model was trained")
    parser.add_argument("--saliency-floor", type=float, default=None, metavar="F",
                        help="brightness kept where saliency is 0, in [0, 1] (default: the model's, else 0.3)")
    parser.add_argument("--saliency-weights", metavar="FILE", default=None,
                        help="weights for a saliency predictor that needs them (mlnet), e.g. the one a model was trained with")
    parser.add_argument("--detector", choices=DETECTORS, default="short",
                        help="short: webcam/portraits; full: group photos, small faces")
    parser.add_argument("--detector-engine", choices=DETECTOR_ENGINES, default="auto",
                        help="what runs the face detector (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=None,
                        help="crop margin per side, fraction of the face box (default: the model's, else 0.2)")
    parser.add_argument("--max-faces", type=int, default=DEFAULT_MAX_FACES, help=f"at most 1..{MAX_FACES} (default: %(default)s)")
    parser.add_argument("--min-score", type=float, default=0.5, help="detector threshold in [0, 1] (default: %(default)s)")
    parser.add_argument("--crop-size", type=int, default=None, metavar="PX", help="side of the face crops (default: 224)")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="what runs the CNN (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    parser.add_argument("--second-opinion", metavar="NAME", default=None,
                        help="a network run beside the model on every face, on its own crop")


def config_from_args(args: argparse.Namespace, **fixed: object):  # noqa: ANN201 (PipelineConfig, imported lazily)
    """The `fer.PipelineConfig` that `add_pipeline_arguments`' parsed options describe (``fixed``:
    fields the command sets itself, e.g. ``attention``). Raises `fer.InputError` on a bad value."""
    from fer.config import PipelineConfig

    given = {"model": args.model, "saliency": args.saliency, "saliency_floor": args.saliency_floor,
             "saliency_input": {"auto": None, "on": True, "off": False}[args.saliency_input],
             "detector": args.detector, "detector_engine": args.detector_engine, "margin": args.margin,
             "max_faces": args.max_faces, "min_score": args.min_score, "engine": args.engine, "device": args.device,
             "second_opinion": args.second_opinion, "saliency_weights": args.saliency_weights}
    if args.crop_size is not None:
        given["crop_size"] = args.crop_size
    return PipelineConfig(**{**given, **fixed})  # type: ignore[arg-type]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``predict``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files")
    add_pipeline_arguments(parser)
    parser.add_argument("--top-k", type=int, default=3, metavar="K", help="labels per face (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--save-maps", metavar="DIR", type=Path, help="write overlays (saliency, CNN input, Grad-CAM) as PNGs")
    parser.add_argument("--attention", action="store_true", help="compute Grad-CAM (implied by --save-maps)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch CPU threads; the CNNs are small, one is enough (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Run ``predict``: exit 0 if every image was read, 1 if any failed."""
    from fer.pipeline import load

    if args.top_k < 1:
        raise InputError("--top-k must be at least 1")
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    import torch

    # Process-wide, so the entry point's choice: the library never changes it.
    torch.set_num_threads(args.threads)
    if args.save_maps is not None:
        _check_writable(args.save_maps)
    pipe = load(config_from_args(args, attention=args.attention or args.save_maps is not None))
    images = []
    with pipe:
        for path in args.paths:
            try:
                predictions = pipe(path)
            except InputError as exc:
                images.append({"path": path, "error": str(exc), "faces": []})
                continue
            if args.save_maps is not None:
                _save_maps(args.save_maps, path, pipe, predictions)
            images.append({"path": path, "error": None, "faces": [p.to_dict(args.top_k) for p in predictions]})
    if args.json:
        print(json.dumps({"model": pipe.spec.name, "labels": list(pipe.labels), "images": images}))
    else:
        _print_table(images)
    return 1 if any(img["error"] for img in images) else 0


def _check_writable(folder: Path) -> None:
    """Refuse (exit 2) a ``--save-maps`` folder that cannot be created or written, before any work."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"--save-maps {folder}: cannot write there ({exc.strerror or type(exc).__name__})") from None


def _save_maps(out_dir: Path, path: str, pipe, predictions) -> None:  # noqa: ANN001 (Pipeline, list[Prediction])
    from fer import viz

    image = None
    stem = Path(path).stem
    for i, pred in enumerate(predictions):
        for kind, picture in viz.prediction_views(pred, pipe.spec.input_size, pipe.spec.colour).items():
            viz.save_png(out_dir / f"{stem}_face{i}_{kind}.png", picture)
    if predictions:
        from fer.io import read_image

        image = read_image(path)
        viz.save_png(out_dir / f"{stem}_annotated.png", viz.annotate(image, predictions))


def _print_table(images: list[dict]) -> None:
    for img in images:
        if img["error"]:
            print(f"{img['path']}: error: {img['error']}")
            continue
        if not img["faces"]:
            print(f"{img['path']}: no face found")
            continue
        for i, face in enumerate(img["faces"]):
            top = ", ".join(f"{t['label']} {t['probability']:.0%}" for t in face["top_k"])
            box = " ".join(str(v) for v in face["box"])
            print(f"{img['path']}  face {i}  box [{box}]  score {face['score']:.2f}  {top}")
