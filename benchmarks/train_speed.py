"""Training throughput: images per second through the real training step (`fer.research.train.train_epoch`:
batch preprocessing, augmentation, forward, backward, optimiser step) for each backbone, on
synthetic crops, and on a GPU how busy the GPU was while it ran.

    .venv/bin/python benchmarks/train_speed.py                       # CPU, the default backbones
    .venv/bin/python benchmarks/train_speed.py --device cuda --amp auto --workers 4 --out benchmarks/results/train_gpu.json

Weights start random (speed does not depend on them); inputs are random crops at each backbone's
input size. The first ``--warmup`` steps are not timed. GPU busy % samples
``torch.cuda.utilization()`` (NVML) every 50 ms while the timed steps run, where NVML is available.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer.models import ARCHITECTURES, ModelSpec  # noqa: E402
from fer.research import distributed as dist  # noqa: E402
from fer.research.recipes import TrainConfig, make_optimizer  # noqa: E402
from fer.research.train import Batches, epoch_steps, train_epoch  # noqa: E402

#: Backbone → (batch size, timed steps) on the CPU: enough steps for a stable rate, few enough
#: that the slow ImageNet backbones finish in about a minute on 2 cores.
CPU_PLAN = {"mini_xception": (32, 12), "resnet18": (16, 3), "efficientnet_lite0": (16, 3), "alexnet": (16, 3)}


class GpuBusy:
    """Mean of ``torch.cuda.utilization()`` sampled in a thread while the block runs (None without NVML)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples, self._stop = device, [], threading.Event()

    def __enter__(self) -> GpuBusy:
        if self.device.type == "cuda":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception:  # no NVML (pynvml) here: utilisation cannot be read
                return
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def percent(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def measure(backbone: str, batch_size: int, steps: int, warmup: int, device: torch.device, amp: str,
            workers: int | None) -> dict:
    """Images per second of ``steps`` timed training steps of ``backbone``."""
    arch = ARCHITECTURES[backbone]
    size = arch.input_size
    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    rng = np.random.default_rng(0)
    n = batch_size * (steps + warmup)
    inputs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    targets = rng.integers(0, len(labels), n).astype(np.int64)
    config = TrainConfig(dataset="folder", root=".", backbone=backbone, pretrained=False, batch_size=batch_size,
                         workers=workers, progress=False, amp=amp).resolved()
    spec = ModelSpec(name="bench", architecture=backbone, input_size=size, colour=arch.colour,
                     mean=tuple(arch.pretrained_mean), std=tuple(arch.pretrained_std), labels=labels, weights="", sha256="")
    ctx = dist.Context()
    torch.manual_seed(0)
    module = arch.build(len(labels), 1 if arch.colour == "grey" else 3, False).to(device)
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(module, config, len(labels))
    scaler = dist.grad_scaler(device, dist.resolve_amp(amp, device))
    order = np.arange(n)
    generator = torch.Generator().manual_seed(0)

    def run(rows: np.ndarray) -> None:
        train_epoch(module, Batches(inputs, targets, epoch_steps(rows, batch_size, ctx), spec), rows, generator,
                    optimizer, scaler, config, device, dist.resolve_amp(amp, device), ctx)

    run(order[:batch_size * warmup])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    with GpuBusy(device) as busy:
        start = time.perf_counter()
        run(order[batch_size * warmup:])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return {"backbone": backbone, "input_size": size, "batch_size": batch_size, "steps": steps,
            "images_per_s": round(batch_size * steps / seconds, 2), "seconds": round(seconds, 2),
            "gpu_busy_percent": busy.percent, "amp": dist.resolve_amp(amp, device),
            "parameters": sum(p.numel() for p in module.parameters())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default=",".join(CPU_PLAN), help="comma-separated (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, help="default: per backbone on the CPU, 128 on CUDA")
    parser.add_argument("--steps", type=int, help="timed steps (default: per backbone on the CPU, 20 on CUDA)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", default="auto", choices=dist.AMP_MODES)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for backbone in args.backbones.split(","):
        batch, steps = CPU_PLAN.get(backbone, (16, 3)) if device.type == "cpu" else (128, 20)
        row = measure(backbone, args.batch_size or batch, args.steps or steps, args.warmup, device, args.amp,
                      args.workers)
        rows.append(row)
        busy = f", GPU busy {row['gpu_busy_percent']:.0f} %" if row["gpu_busy_percent"] is not None else ""
        print(f"{backbone:>20} {row['input_size']:>4} px  batch {row['batch_size']:>3}: "
              f"{row['images_per_s']:>8.2f} images/s{busy}", flush=True)
    report = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.machine(), "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
