"""One rank of a 2-process CPU (gloo) job started by tests/test_distributed.py with
torch.multiprocessing: the environment torchrun would set, a tiny network registered as it would be
by a plugin, and a record of every file each rank writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: A network without BatchNorm or dropout: its distributed gradients are exactly the single
#: process's up to float summation order (PyTorch has no CPU SyncBatchNorm; see fer.research.distributed.wrap).
TINY = "tiny_cnn_test"


def register_tiny() -> None:
    """Register `TINY` in fer.models.ARCHITECTURES (a 2-conv grey network, 32 px input)."""
    from fer.backbones import Architecture
    from fer.models import ARCHITECTURES

    def build(num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    ARCHITECTURES[TINY] = Architecture(build, lambda m: m[2], 32, "grey", (0.5,), (0.5,), "test network")


def run_rank(rank: int, config: dict[str, Any], log_dir: str, port: int,
             more: tuple[dict[str, Any], ...] = ()) -> None:
    """Train ``config`` as rank ``rank`` of 2, then evaluate the result sharded; writes
    ``LOG/rank-R.json`` with the files this rank wrote and the evaluation's confusion matrix.
    The configurations in ``more`` are trained after it in the same job (other batch sizes)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes on a shared 2-core machine
    register_tiny()
    import fer.models
    import fer.research.evaluate as E
    import fer.research.train as T
    from fer.research import distributed as dist
    from fer.research.datasets import load_dataset
    from fer.research.recipes import TrainConfig

    written: list[str] = []
    real = {"checkpoint": T.save_checkpoint, "plot": E.plot_confusion, "spec": fer.models.ModelSpec.save,
            "torch": torch.save}

    def checkpoint(module: nn.Module, spec: Any, out_dir: Any, stem: str = "model") -> Any:
        written.append(f"{stem}.safetensors")
        return real["checkpoint"](module, spec, out_dir, stem)

    def plot(result: Any, path: Any, title: str | None = None) -> Any:
        written.append(Path(path).name)
        return real["plot"](result, path, title)

    def spec_save(self: Any, path: Any) -> Any:
        written.append(Path(path).name)
        return real["spec"](self, path)

    def torch_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        written.append(Path(f).name)
        return real["torch"](obj, f, *args, **kwargs)

    T.save_checkpoint, E.plot_confusion, fer.models.ModelSpec.save, torch.save = checkpoint, plot, spec_save, torch_save

    train_config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    device = torch.device("cpu")
    with dist.process_group(device) as ctx:
        spec_path = T.train(train_config)
        torch.save = real["torch"]
        dataset = load_dataset("rafd", train_config.root, assume_cropped=True)
        result = E.evaluate(fer.models.load_network(spec_path, engine="torch"), dataset)
        world = ctx.world_size
        for extra in more:
            T.train(TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}))
    Path(log_dir, f"rank-{rank}.json").write_text(json.dumps(
        {"written": written, "world_size": world, "confusion": result.confusion.tolist(), "n": result.n}))
