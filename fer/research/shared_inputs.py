"""What the CNN trains on, held once per machine rather than once per process: in a distributed
job rank 0 detects the faces, weights them by saliency and writes the ``(N, S, S, 3)`` uint8 array
to ``OUT/inputs.tmp.npy``; every rank, rank 0 included, then memory-maps it read-only, so the
operating system's page cache holds one copy for all of them and the other ranks never build
theirs. A single process keeps the array in memory, as before. The file is removed when training
ends.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer.research import distributed as dist
from fer.research.datasets import Sample, Skipped
from fer.research.face_cache import crop_size_for, prepare_crops, weighted_crops

if TYPE_CHECKING:
    from fer.research.datasets import Dataset
    from fer.research.recipes import TrainConfig

INPUTS_FILE = "inputs.tmp.npy"


@dataclass(frozen=True)
class TrainingInputs:
    """The model inputs of every sample that yielded a face crop.

    Attributes:
        images: ``(N, S, S, 3)`` uint8 RGB, face × saliency when training with saliency (a read-only
            memory map in a distributed job).
        samples: the ``N`` samples, in row order (CSV pixels dropped: the rows hold them).
        skipped: samples without a crop, and why.
        held: how the rows are held, for the spec ("in memory" or "memory-mapped, shared by N processes").
    """

    images: np.ndarray
    samples: tuple[Sample, ...]
    skipped: tuple[Skipped, ...]
    held: str

    @property
    def labels(self) -> list[str]:
        """The ``N`` samples' labels."""
        return [s.label for s in self.samples]


def training_inputs(dataset: Dataset, config: TrainConfig, predictor: Any, ctx: dist.Context,
                    folder: Path) -> TrainingInputs:
    """Face crops of ``dataset`` weighted by ``predictor`` (None: plain crops), made once (rank 0)."""
    assert config.input_size is not None
    if ctx.main or ctx.world_size == 1:
        crops = prepare_crops(dataset.samples, crop_size=crop_size_for(dataset.samples, config.input_size),
                              assume_cropped=dataset.assume_cropped, margin=config.margin, cache_dir=config.cache_dir,
                              progress=config.progress and ctx.main)
        images = weighted_crops(crops, predictor, config.saliency_floor, progress=config.progress and ctx.main,
                                description=f"saliency ({config.saliency})")
        samples = tuple(dataclasses.replace(s, pixels=None) for s in crops.samples)
        if ctx.world_size == 1:
            return TrainingInputs(images, samples, crops.skipped, "in memory")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{INPUTS_FILE}.{os.getpid()}.npy"
        np.save(tmp, np.ascontiguousarray(images))
        os.replace(tmp, folder / INPUTS_FILE)
        meta: tuple[tuple[Sample, ...], tuple[Skipped, ...]] = (samples, crops.skipped)
        del crops, images
    else:
        meta = ((), ())
    samples, skipped = dist.broadcast(meta, ctx)  # after rank 0 wrote the file
    images = np.load(folder / INPUTS_FILE, mmap_mode="r")
    return TrainingInputs(images, samples, skipped, f"memory-mapped, shared by {ctx.world_size} processes")


def release(folder: Path, ctx: dist.Context) -> None:
    """Remove the shared inputs file once every rank is done with it (nothing in a single process)."""
    if ctx.world_size > 1:
        dist.barrier(ctx)
        if ctx.main:
            (folder / INPUTS_FILE).unlink(missing_ok=True)
