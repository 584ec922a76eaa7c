"""Fine-tune an expression CNN on a dataset the user holds, optionally on face × saliency inputs
(the paper's method), and save a checkpoint whose spec carries labels, preprocessing, saliency
mode, split, training configuration and held-out metrics.

    python -m fer train --dataset rafd --root RaFD/ --backbone alexnet --saliency face-prior

Recipes: AlexNet gets the paper's Caffe-style fine-tuning (SGD, momentum 0.9, the new classifier at
10x the learning rate of the pretrained layers, step decay); other backbones get AdamW with a cosine
schedule. Both use random horizontal flips and small random crops (zoom up to 15 %). Runs are
deterministic for a given seed and device, and ``--resume`` continues an interrupted run exactly.

Outputs in ``--out``: ``best.safetensors`` + ``best.json`` (the checkpoint with the best validation
accuracy; load with `fer.models.load_model` or `fer.load`), ``last.safetensors`` + ``last_state.pt``
(for resuming), ``confusion.png`` (test split).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer.errors import InputError, WeightsError
from fer.models import ARCHITECTURES, LoadedModel, ModelSpec, available_architectures, preprocess, save_checkpoint
from fer.research.datasets import Crops, crop_size_for, load_dataset, prepare_crops, split_dataset
from fer.research.evaluate import EvaluationResult, batched_probabilities, score

#: Per-optimiser defaults: learning rate of freshly initialised layers, weight decay, epochs.
#: Pretrained layers train at `PRETRAINED_LR_SCALE` times the learning rate.
RECIPES: dict[str, dict[str, float]] = {
    # Caffe fine-tuning as the paper did it (CaffeNet, base_lr 0.001, new layer lr_mult 10,
    # weight_decay 0.0005, momentum 0.9); the rate drops 10x at 1/2 and 3/4 of the epochs.
    "sgd": {"lr": 0.01, "weight_decay": 5e-4, "epochs": 30},
    "adamw": {"lr": 1e-3, "weight_decay": 0.05, "epochs": 20},
}
PRETRAINED_LR_SCALE = 0.1
#: Largest random zoom of the training augmentation ("small crops"): up to 15 % of the side cut away.
MAX_ZOOM = 0.15


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved in the checkpoint's ``training`` field).

    ``optimizer``, ``lr``, ``weight_decay`` and ``epochs`` default to the recipe: "sgd" (the paper's)
    for alexnet, "adamw" otherwise. ``input_size`` defaults to the architecture's. ``margin`` is
    the face crop margin (None: the detector's default). ``saliency_floor`` keeps that fraction of
    brightness where the saliency map is 0 (0.0: the paper's plain product).
    """

    dataset: str
    root: str
    backbone: str = "alexnet"
    saliency: str = "none"
    saliency_floor: float = 0.0
    saliency_weights: str | None = None
    epochs: int | None = None
    batch_size: int = 32
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    pretrained: bool = True
    augment: bool = True
    input_size: int | None = None
    folds: int = 5
    fold: int = 0
    seed: int = 0
    assume_cropped: bool = False
    margin: float | None = None
    cache_dir: str | None = None
    angles: tuple[int, ...] | None = (90,)
    gazes: tuple[str, ...] | None = None
    cfee_subset: str = "basic"
    subject_pattern: str | None = None
    usages: tuple[str, ...] | None = None
    device: str = "auto"
    out: str | None = None
    name: str | None = None
    resume: bool = False
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every recipe default filled in and values checked."""
        if self.backbone not in ARCHITECTURES:
            raise InputError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(available_architectures())}")
        optimizer = self.optimizer or ("sgd" if self.backbone == "alexnet" else "adamw")
        if optimizer not in RECIPES:
            raise InputError(f"optimizer must be one of {', '.join(RECIPES)}, not {optimizer!r}")
        recipe = RECIPES[optimizer]
        config = dataclasses.replace(
            self,
            optimizer=optimizer,
            lr=recipe["lr"] if self.lr is None else self.lr,
            weight_decay=recipe["weight_decay"] if self.weight_decay is None else self.weight_decay,
            epochs=int(recipe["epochs"]) if self.epochs is None else self.epochs,
            input_size=self.input_size or ARCHITECTURES[self.backbone].input_size,
            name=self.name or "-".join([self.dataset, self.backbone] + ([self.saliency] if self.saliency != "none" else [])),
            root=str(self.root),
        )
        assert config.name is not None and config.epochs is not None and config.input_size is not None  # for mypy
        config = dataclasses.replace(config, out=str(self.out or Path("runs") / config.name))
        for field_name, low in (("epochs", 1), ("batch_size", 2), ("input_size", 16)):
            if getattr(config, field_name) < low:
                raise InputError(f"{field_name} must be at least {low}, got {getattr(config, field_name)}")
        if not 0.0 <= config.saliency_floor <= 1.0:
            raise InputError(f"saliency_floor must be in [0, 1], got {config.saliency_floor}")
        if config.lr is None or config.lr <= 0:
            raise InputError(f"learning rate must be positive, got {config.lr}")
        if config.saliency != "none":
            from fer.saliency import SALIENCY_REGISTRY

            if config.saliency not in SALIENCY_REGISTRY:
                raise InputError(f"unknown saliency {config.saliency!r}; choose none or one of "
                                 f"{', '.join(SALIENCY_REGISTRY)}")
        return config

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def seed_everything(seed: int) -> None:
    """Seed torch and numpy and ask for deterministic kernels (warnings, not errors, where none exist)."""
    # cuBLAS is deterministic only with a fixed workspace; must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def augment(x: torch.Tensor, generator: torch.Generator, max_zoom: float = MAX_ZOOM) -> torch.Tensor:
    """Random horizontal flip and random crop (zoom in by up to ``max_zoom``, anywhere in the frame),
    per sample, as one resampling.

    Args:
        x: ``(N, C, H, W)`` float32 batch.
        generator: CPU generator driving the randomness (so runs are reproducible).
    Returns:
        ``(N, C, H, W)`` float32; borders repeat when a crop would leave the image.
    """
    n = x.shape[0]
    scale = 1.0 - max_zoom * torch.rand(n, generator=generator)
    shift = (1.0 - scale)[:, None] * (2.0 * torch.rand(n, 2, generator=generator) - 1.0)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def head_parameters(model: nn.Module, num_classes: int) -> set[int]:
    """Ids of the parameters of the classifier layer (the last Linear/Conv2d with ``num_classes`` outputs),
    which the builders create fresh and which therefore train at the full learning rate."""
    heads = [m for m in model.modules()
             if (isinstance(m, nn.Linear) and m.out_features == num_classes)
             or (isinstance(m, nn.Conv2d) and m.out_channels == num_classes)]
    return {id(p) for p in heads[-1].parameters()} if heads else set()


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): SGD steps 10x down at 1/2 and 3/4 of the
    run; AdamW follows a half cosine from 1 towards 0."""
    epochs = config.epochs or 1
    if config.optimizer == "sgd":
        return 0.1 ** sum(epoch >= int(epochs * f) for f in (0.5, 0.75))
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def _make_optimizer(model: nn.Module, config: TrainConfig, num_classes: int) -> torch.optim.Optimizer:
    head = head_parameters(model, num_classes)
    lr = float(config.lr or RECIPES[config.optimizer or "adamw"]["lr"])
    weight_decay = float(config.weight_decay or 0.0)
    body_scale = PRETRAINED_LR_SCALE if config.pretrained else 1.0
    groups: list[dict[str, Any]] = [
        {"params": [p for p in model.parameters() if id(p) not in head], "lr": lr * body_scale},
        {"params": [p for p in model.parameters() if id(p) in head], "lr": lr},
    ]
    groups = [g for g in groups if g["params"]]
    for g in groups:
        g["base_lr"] = g["lr"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def _saliency_inputs(crops: Crops, config: TrainConfig, device: torch.device) -> np.ndarray:
    """Crops × saliency maps, computed once (maps depend on the crop only, not on the epoch)."""
    if config.saliency == "none" or len(crops) == 0:
        return crops.images
    from fer.saliency import apply_saliency, load_saliency

    predictor = load_saliency(config.saliency, device=str(device), weights=config.saliency_weights)
    out = np.empty_like(crops.images)
    from tqdm.auto import tqdm

    for start in tqdm(range(0, len(crops), 64), desc=f"saliency ({config.saliency})", unit="batch",
                      disable=not config.progress, leave=False):
        images = crops.images[start:start + 64]
        maps = predictor(images, crops.keypoints[start:start + 64])
        out[start:start + 64] = apply_saliency(images, maps, config.saliency_floor)
    return out


def _evaluate(module: nn.Module, spec: ModelSpec, inputs: np.ndarray, labels: list[str],
              data_labels: tuple[str, ...], batch_size: int) -> tuple[EvaluationResult, float]:
    """Score ``module`` on prepared inputs; returns the result and the mean cross-entropy."""
    module.eval()
    probs = batched_probabilities(LoadedModel(module, spec), inputs, batch_size)
    index = {label: i for i, label in enumerate(spec.labels)}
    true = np.array([index[label] for label in labels], np.int64)
    loss = float(-np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, None)).mean()) if len(true) else 0.0
    return score(probs, spec.labels, labels, data_labels=data_labels, model=spec.name), loss


def _load_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path), device="cpu"), strict=True)


def train(config: TrainConfig) -> Path:
    """Train a model as ``config`` says.

    Returns:
        Path of the best checkpoint's spec (``OUT/best.json``), loadable with `fer.models.load_model`.
    Raises:
        InputError: bad configuration or unusable data; WeightsError: ImageNet weights unavailable.
    """
    from tqdm.auto import tqdm

    from fer.pipeline import resolve_device

    config = config.resolved()
    assert config.out and config.name and config.input_size and config.epochs  # resolved() filled them in
    started = time.perf_counter()
    out = Path(config.out)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    arch = ARCHITECTURES[config.backbone]

    dataset = load_dataset(
        config.dataset, config.root, assume_cropped=config.assume_cropped, angles=config.angles,
        gazes=config.gazes, subset=config.cfee_subset, subject_pattern=config.subject_pattern, usages=config.usages,
    )
    split = split_dataset(dataset, folds=config.folds, fold=config.fold, seed=config.seed)
    if not split.train:
        raise InputError(f"{dataset.name}: the training split is empty")
    crops = prepare_crops(dataset.samples, crop_size=crop_size_for(dataset.samples, config.input_size),
                          assume_cropped=dataset.assume_cropped,
                          margin=config.margin, cache_dir=config.cache_dir, progress=config.progress)
    row_of = {sample.key: row for row, sample in enumerate(crops.samples)}
    parts = {name: np.array([row_of[dataset.samples[i].key] for i in getattr(split, name)
                             if dataset.samples[i].key in row_of], np.int64) for name in ("train", "val", "test")}
    if len(parts["train"]) < 2:
        raise InputError(f"{dataset.name}: fewer than 2 training images have a face crop "
                         f"({len(crops.skipped)} skipped)")
    inputs = _saliency_inputs(crops, config, device)
    labels = dataset.labels
    targets = np.array([labels.index(label) for label in crops.labels], np.int64)

    from fer.face import DEFAULT_MARGIN

    # The margin the pipeline should crop with to match training; unknown for ready-made crops.
    margin = None if dataset.assume_cropped else (DEFAULT_MARGIN if config.margin is None else config.margin)
    channels = 1 if arch.colour == "grey" else 3
    spec = ModelSpec(
        name=config.name, architecture=config.backbone, input_size=config.input_size, colour=arch.colour,
        mean=tuple(arch.pretrained_mean), std=tuple(arch.pretrained_std), labels=labels, weights="", sha256="",
        licence="trained by the user: the training data's licence terms apply",
        source="fer train", training_data=f"{dataset.name} ({config.root}), {split.info['method']}",
        saliency_input=None if config.saliency == "none" else config.saliency,
        saliency_floor=config.saliency_floor if config.saliency != "none" else 0.0,
        margin=margin,
        notes="crops were given (no face detection); keypoints estimated" if dataset.assume_cropped else "",
    )
    try:
        module = arch.build(len(labels), channels, config.pretrained)
    except WeightsError as exc:
        hint = "" if "--no-pretrained" in str(exc) else " (command line: --no-pretrained trains from random weights)"
        raise WeightsError(f"{exc}{hint}") from None
    module.to(device)
    optimizer = _make_optimizer(module, config, len(labels))
    criterion = nn.CrossEntropyLoss()

    state_file = out / "last_state.pt"
    history: list[dict[str, float]] = []
    best_accuracy, best_epoch, start_epoch = -1.0, -1, 0
    if config.resume and state_file.is_file():
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        if state.get("key") != _run_key(config):
            raise InputError(f"{out} holds a different run (dataset/backbone/saliency/split/seed differ); "
                             "use another --out or drop --resume")
        _load_weights(module, out / "last.safetensors")
        optimizer.load_state_dict(state["optimizer"])
        history = json.loads(state["history"])
        best_accuracy, best_epoch, start_epoch = float(state["best_accuracy"]), int(state["best_epoch"]), int(state["epoch"]) + 1
    elif (out / "best.json").exists() and not config.resume:
        raise InputError(f"{out} already holds a trained model; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    train_rows, val_rows = parts["train"], parts["val"]
    epochs = tqdm(range(start_epoch, config.epochs), desc=config.name, unit="epoch", disable=not config.progress,
                  initial=start_epoch, total=config.epochs)
    for epoch in epochs:
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it exactly.
        torch.manual_seed(config.seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(config, epoch)
        module.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        total_loss, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            if len(rows) < 2:  # BatchNorm cannot train on a single sample
                continue
            x = preprocess(inputs[rows], spec).to(device)
            if config.augment:
                x = augment(x, generator)
            y = torch.from_numpy(targets[rows]).to(device)
            logits = module(x)
            loss = criterion(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(rows)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(rows)
        record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1)}
        if len(val_rows):
            result, val_loss = _evaluate(module, spec, inputs[val_rows], [crops.labels[r] for r in val_rows],
                                         labels, config.batch_size)
            record.update(val_accuracy=result.accuracy, val_loss=val_loss)
            improved = result.accuracy > best_accuracy
        else:  # no validation data (e.g. a FER2013 CSV without PublicTest): keep the last epoch
            improved = True
        history.append({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()})
        if improved:
            best_accuracy, best_epoch = record.get("val_accuracy", -1.0), epoch + 1
            save_checkpoint(module, spec, out, "best")
        save_checkpoint(module, spec, out, "last")
        torch.save({"key": _run_key(config), "epoch": epoch, "optimizer": optimizer.state_dict(),
                    "best_accuracy": best_accuracy, "best_epoch": best_epoch, "history": json.dumps(history)},
                   state_file)
        epochs.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record.get('val_accuracy', float('nan')):.3f}")

    _load_weights(module, out / "best.safetensors")
    module.to(device)
    evaluation = None
    if len(parts["test"]):
        test_rows = parts["test"]
        result, _ = _evaluate(module, spec, inputs[test_rows], [crops.labels[r] for r in test_rows], labels,
                              config.batch_size)
        result = dataclasses.replace(result, dataset=dataset.name)
        evaluation = {**result.to_dict(), "dataset": dataset.name, "split": "test"}
        del evaluation["skipped"]
        from fer.research.evaluate import plot_confusion

        plot_confusion(result, out / "confusion.png", title=f"{spec.name}, test split")
    training = {
        **config.to_dict(),
        "dataset": dataset.name,
        "dataset_summary": dataset.describe(),
        "split": split.to_dict(),
        "skipped": [s.to_dict() for s in (*dataset.skipped, *crops.skipped)][:100],
        "skipped_count": len(dataset.skipped) + len(crops.skipped),
        "best_epoch": best_epoch,
        "best_val_accuracy": round(best_accuracy, 6) if best_accuracy >= 0 else None,
        "selection": "best validation accuracy" if len(val_rows) else "last epoch (no validation data)",
        "history": history,
        "device": str(device),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }
    best = ModelSpec.load(out / "best.json")
    best = dataclasses.replace(best, evaluation=evaluation, training=training)
    best.save(out / "best.json")
    return out / "best.json"


def _run_key(config: TrainConfig) -> str:
    """What must match for ``--resume`` to continue a run rather than start a different one."""
    fields = ("dataset", "root", "backbone", "saliency", "saliency_floor", "folds", "fold", "seed", "optimizer",
              "input_size", "pretrained", "batch_size", "epochs", "lr")
    return json.dumps({k: getattr(config, k) for k in fields}, sort_keys=True)


# --------------------------------------------------------------------------- CLI


def saliency_choices() -> dict[str, str]:
    """Saliency input modes: "none" plus every registered predictor, with its status."""
    from fer.saliency import saliency_status

    return {"none": "plain face crops", **saliency_status()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``train``."""
    from fer.research.datasets import add_dataset_arguments

    add_dataset_arguments(parser)
    backbones = available_architectures()
    parser.add_argument("--backbone", choices=backbones, default="alexnet", metavar="NAME",
                        help="network: " + "; ".join(f"{n} ({ARCHITECTURES[n].description})" for n in backbones)
                        + " (default: %(default)s, the paper's)")
    saliency = saliency_choices()
    parser.add_argument("--saliency", choices=list(saliency), default="none", metavar="NAME",
                        help="feed the CNN face x saliency map (the paper's method): "
                        + "; ".join(f"{n} ({status})" for n, status in saliency.items()) + " (default: %(default)s)")
    parser.add_argument("--saliency-floor", type=float, default=0.0,
                        help="brightness kept where saliency is 0, in [0, 1] (default: %(default)s, the paper's product)")
    parser.add_argument("--saliency-weights", metavar="FILE", help="weights for a predictor that needs them (mlnet)")
    parser.add_argument("--epochs", type=int, help="default: 30 (sgd) / 20 (adamw)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
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
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/DATASET-BACKBONE[-SALIENCY])")
    parser.add_argument("--name", help="model name written in the spec (default: the output folder's name pattern)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """`TrainConfig` from parsed ``train`` options."""
    from fer.research.datasets import dataset_options

    options = dataset_options(args)
    if args.dataset == "rafd" and options["angles"] is None:
        from fer.research.datasets import RAFD_ANGLES

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
        usages=tuple_or_none(options["usages"]), device=args.device, out=str(args.out) if args.out else None,
        name=args.name, resume=args.resume, progress=not args.quiet,
    )


def summary(spec_path: Path) -> str:
    """One paragraph about a finished run: where the model is and how it scored."""
    spec = ModelSpec.load(spec_path)
    lines = [f"saved {spec_path} ({spec.architecture}, labels: {', '.join(spec.labels)})"]
    training: Mapping[str, Any] = spec.training or {}
    if training.get("best_val_accuracy") is not None:
        lines.append(f"best validation accuracy {training['best_val_accuracy']:.2%} at epoch {training['best_epoch']}")
    if spec.evaluation:
        lines.append(f"test accuracy {spec.evaluation['accuracy']:.2%}, macro F1 {spec.evaluation['macro_f1']:.4f} "
                     f"(n={spec.evaluation['n']})")
    if training.get("skipped_count"):
        lines.append(f"{training['skipped_count']} image(s) skipped (see 'training.skipped' in the spec)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``train``."""
    print(summary(train(config_from_args(args))))
    return 0
