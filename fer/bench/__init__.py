"""Speed benchmark: ``python -m fer bench [--json] [--full]``.

Measures every stage of the pipeline on two 640×480 frames composed from the shipped assets (one
face, and five faces of decreasing size), each stage on fixed inputs, interleaved frame by frame
so that a change in machine load hits every stage alike:

decode (JPEG) → detect (the face detector alone: network and decoding, no crops; and MediaPipe's
Tasks detector on the same model, for comparison) → crop/align → each saliency predictor → face × saliency
→ preprocess → CNN forward → Grad-CAM → overlay rendering,

then end to end: ``Pipeline.__call__`` (detect → classify, what the ``fer`` PyPI package's
``detect_emotions`` does), the whole frame (detect → … → overlays, Grad-CAM for every face; from
pixels in memory, the detector-alone baseline's input, and from a JPEG, decode included) and the
app's live handler (`fer.app.live.step`), plus cold start and peak memory of a fresh process.
Every registered expression model (each network and each ensemble, `model_stages`) is timed on the
same frames: its crop, its CNN, classifying the detected faces and detect → classify.

The quick form (default) is a short run; ``--full`` runs more iterations and adds the other
detector, a thread sweep of the CNN and a PNG decode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fer.bench.frames import FRAME_SHAPE, FRAMES, compose_frame
from fer.bench.report import format_report, format_table, plot_stages
from fer.bench.runner import run_benchmark, stage_ms
from fer.bench.stages import render_views
from fer.bench.timing import summarise
from fer.errors import InputError

__all__ = ["FRAME_SHAPE", "FRAMES", "compose_frame", "format_report", "format_table", "plot_stages", "render_views",
           "run_benchmark", "stage_ms", "summarise", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--full", action="store_true",
                        help="more rounds, both detectors, PNG decode and a CNN thread sweep (takes longer)")
    parser.add_argument("--iterations", type=int, default=None, metavar="N",
                        help="timed rounds per frame (default: 30, or 300 with --full)")
    parser.add_argument("--cold-runs", type=int, default=None, metavar="N",
                        help="fresh processes for cold start and memory; the first only warms the file cache "
                             "when N > 1 (default: 2, or 4 with --full)")
    parser.add_argument("--no-live", action="store_true", help="skip the app's live handler (fer.app.live)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch CPU threads, as the app's FER_TORCH_THREADS (default: %(default)s)")
    parser.add_argument("--engine", choices=("auto", "opencv", "torch"), default="auto",
                        help="what runs the CNN (default: auto, OpenCV DNN on the CPU when it matches PyTorch)")
    parser.add_argument("--detector-engine", choices=("auto", "litert", "mediapipe"), default="auto",
                        help="what runs the face detector (default: auto, LiteRT when installed)")
    parser.add_argument("--out", type=Path, metavar="JSON", help="also write the JSON document to this file")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw the stage chart to this file")


def run(args: argparse.Namespace) -> int:
    """Run ``bench``; exit 0."""
    iterations = args.iterations if args.iterations is not None else (300 if args.full else 30)
    cold_runs = args.cold_runs if args.cold_runs is not None else (4 if args.full else 2)
    if iterations < 1 or cold_runs < 1:
        raise InputError("--iterations and --cold-runs must be at least 1")
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    import torch

    # An entry point's choice, never the library's: fer.load leaves torch's threads alone.
    torch.set_num_threads(args.threads)
    progress = None if args.json else (lambda line: print(f"… {line}", file=sys.stderr, flush=True))
    doc = run_benchmark(iterations=iterations, warmup=min(10, max(2, iterations // 10)), full=args.full,
                        cold_runs=cold_runs, live=not args.no_live, progress=progress, engine=args.engine,
                        detector_engine=args.detector_engine)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_stages(doc, args.plot)
    print(json.dumps(doc, ensure_ascii=False) if args.json else format_report(doc))
    return 0
