"""How a training run is configured: `TrainConfig` (every setting, with the recipe's defaults filled
in by `TrainConfig.resolved`), the two optimisation recipes, and the learning-rate schedule.

AlexNet gets the paper's Caffe-style fine-tuning (SGD, momentum 0.9, the new classifier at 10x the
learning rate of the pretrained layers, step decay); other backbones get AdamW with a cosine schedule.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer.errors import InputError
from fer.research.distributed import AMP_MODES

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Per-optimiser defaults: learning rate of freshly initialised layers, weight decay, epochs.
#: Pretrained layers train at `PRETRAINED_LR_SCALE` times the learning rate.
RECIPES: dict[str, dict[str, float]] = {
    # Caffe fine-tuning as the paper did it (CaffeNet, base_lr 0.001, new layer lr_mult 10,
    # weight_decay 0.0005, momentum 0.9); the rate drops 10x at 1/2 and 3/4 of the epochs.
    "sgd": {"lr": 0.01, "weight_decay": 5e-4, "epochs": 30},
    "adamw": {"lr": 1e-3, "weight_decay": 0.05, "epochs": 20},
}
PRETRAINED_LR_SCALE = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved in the checkpoint's ``training`` field).

    ``optimizer``, ``lr``, ``weight_decay`` and ``epochs`` default to the recipe: "sgd" (the paper's)
    for alexnet, "adamw" otherwise. ``input_size`` defaults to the architecture's. ``margin`` is
    the face crop margin (None: the detector's default). ``saliency_floor`` keeps that fraction of
    brightness where the saliency map is 0 (0.0: the paper's plain product). ``classes`` trains on
    those labels only (the paper's cross-dataset setting: the classes two datasets share).
    ``batch_size`` is the global batch: with N processes each takes 1/N of it. ``amp``: mixed
    precision on CUDA (`fer.research.distributed.AMP_MODES`); ``workers``: DataLoader processes
    (default: 4 on CUDA, none on the CPU). ``warmup_epochs``: the learning rate rises linearly, step
    by step, over the first that many epochs; ``label_smoothing``: cross-entropy's (0: none);
    ``grad_clip``: largest global gradient norm (None: no clipping); ``ema_decay``: validate, test
    and save an exponential moving average of the weights with this decay (None: the weights
    themselves); ``compile``: run the network through ``torch.compile``.
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
    classes: tuple[str, ...] | None = None
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    ema_decay: float | None = None
    compile: bool = False
    amp: str = "auto"
    workers: int | None = None
    device: str = "auto"
    out: str | None = None
    name: str | None = None
    resume: bool = False
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every recipe default filled in, paths made absolute, and values checked."""
        from fer.models import ARCHITECTURES, available_architectures

        if self.backbone not in ARCHITECTURES:
            raise InputError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(available_architectures())}")
        optimizer = self.optimizer or ("sgd" if self.backbone == "alexnet" else "adamw")
        if optimizer not in RECIPES:
            raise InputError(f"optimizer must be one of {', '.join(RECIPES)}, not {optimizer!r}")
        recipe = RECIPES[optimizer]
        weights = self.saliency_weights
        if weights and Path(weights).expanduser().exists():
            weights = str(Path(weights).expanduser().resolve())
        config = dataclasses.replace(
            self,
            optimizer=optimizer,
            lr=recipe["lr"] if self.lr is None else self.lr,
            weight_decay=recipe["weight_decay"] if self.weight_decay is None else self.weight_decay,
            epochs=int(recipe["epochs"]) if self.epochs is None else self.epochs,
            input_size=self.input_size or ARCHITECTURES[self.backbone].input_size,
            name=self.name or "-".join([self.dataset, self.backbone] + ([self.saliency] if self.saliency != "none" else [])),
            # Specs record where the data is, not where the shell happened to be.
            root=str(Path(self.root).expanduser().resolve()),
            saliency_weights=weights,
            classes=tuple(self.classes) if self.classes else None,
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
        if config.amp not in AMP_MODES:
            raise InputError(f"amp must be one of {', '.join(AMP_MODES)}, not {config.amp!r}")
        if not 0 <= config.warmup_epochs <= (config.epochs or 0):
            raise InputError(f"warmup_epochs must be in 0..{config.epochs} (the epochs), got {config.warmup_epochs}")
        if not 0.0 <= config.label_smoothing < 1.0:
            raise InputError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
        if config.grad_clip is not None and config.grad_clip <= 0:
            raise InputError(f"grad_clip must be positive, got {config.grad_clip}")
        if config.ema_decay is not None and not 0.0 < config.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in (0, 1), got {config.ema_decay}")
        if config.workers is not None and config.workers < 0:
            raise InputError(f"workers must be 0 or more, got {config.workers}")
        if config.saliency != "none":
            from fer.saliency import SALIENCY_REGISTRY

            if config.saliency not in SALIENCY_REGISTRY:
                raise InputError(f"unknown saliency {config.saliency!r}; choose none or one of "
                                 f"{', '.join(SALIENCY_REGISTRY)}")
        return config

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def head_parameters(model: nn.Module, num_classes: int) -> set[int]:
    """Ids of the parameters of the classifier layer (the last Linear/Conv2d with ``num_classes`` outputs),
    which the builders create fresh and which therefore train at the full learning rate."""
    from torch import nn

    heads = [m for m in model.modules()
             if (isinstance(m, nn.Linear) and m.out_features == num_classes)
             or (isinstance(m, nn.Conv2d) and m.out_channels == num_classes)]
    return {id(p) for p in heads[-1].parameters()} if heads else set()


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based): SGD steps 10x down at 1/2 and 3/4 of the
    run (never before the second epoch, so a 1-epoch run trains at the full rate); AdamW follows a
    half cosine from 1 towards 0."""
    epochs = config.epochs or 1
    if config.optimizer == "sgd":
        return 0.1 ** sum(epoch >= max(1, int(epochs * f)) for f in (0.5, 0.75))
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def warmup_factor(config: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """Linear warmup multiplier for optimizer step ``step`` (0-based) of ``steps`` in ``epoch``
    (0-based): from 1/(warmup steps) up to 1 at the end of ``warmup_epochs``; 1 after, or without warmup."""
    total = config.warmup_epochs * steps
    done = epoch * steps + step + 1
    return 1.0 if total <= 0 or done >= total else done / total


class WeightAverage:
    """Exponential moving average of a network's weights (``ema = decay * ema + (1 - decay) * w``
    after every step); integer buffers (BatchNorm's step count) are copied as they are."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self) -> None:
        """Fold the current weights of the network into the average."""
        import torch

        with torch.no_grad():
            for name, value in self.model.state_dict().items():
                if value.is_floating_point():
                    self.state[name].mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
                else:
                    self.state[name].copy_(value)


def make_optimizer(model: nn.Module, config: TrainConfig, num_classes: int) -> torch.optim.Optimizer:
    """The recipe's optimiser: the new classifier at ``lr``, pretrained layers at `PRETRAINED_LR_SCALE`
    times it; each group keeps its ``base_lr`` for the schedule."""
    import torch

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
