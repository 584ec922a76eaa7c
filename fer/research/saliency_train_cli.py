"""The ``train-saliency`` command: its options, and the exit status of a run of
`fer.research.saliency_train.train_mlnet`. Kept apart from that module, which imports torch and is
imported only when the command runs, so that ``python -m fer train-saliency --help`` stays light.
"""

from __future__ import annotations

import argparse
import sys

from fer.errors import FerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m fer train-saliency``."""
    parser.add_argument("--images", required=True, help="folder of training images (jpg/png)")
    parser.add_argument("--maps", required=True, help="folder of ground-truth density maps with the same stems")
    parser.add_argument("--fixations", help="folder of binary fixation maps (adds NSS and AUC-Judd to validation)")
    parser.add_argument("--out", default="runs/mlnet", help="output folder (default: runs/mlnet)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(480, 640), help="input size, multiples of 8")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--patience", type=int, default=5, help="stop after this many epochs without a CC gain")
    parser.add_argument("--backbone-weights", help="torchvision VGG-16 weights (.safetensors) to start from")
    parser.add_argument("--width", type=float, default=1.0, help="VGG channel multiplier (1.0 = paper; less for quick tests)")
    parser.add_argument("--conv5-dilation", type=int, choices=(1, 2), default=1)
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train from parsed arguments. Exit status 0 trained, 1 trained but some files were skipped,
    2 bad arguments or data."""
    from fer.research.saliency_train import train_mlnet

    skipped: list[str] = []

    def log(line: str) -> None:
        if line.startswith("skipped "):
            skipped.append(line)
            print(line, file=sys.stderr)
        else:
            print(line)

    try:
        train_mlnet(
            args.images, args.maps, args.fixations, out_dir=args.out, epochs=args.epochs, size=args.size,
            batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, val_fraction=args.val_fraction,
            patience=args.patience, device=args.device, seed=args.seed, width=args.width,
            conv5_dilation=args.conv5_dilation, backbone_weights=args.backbone_weights, flip=not args.no_flip,
            workers=args.workers, progress=not args.no_progress, log=log,
        )
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if skipped else 0
