"""One training or evaluation job over several processes with torch.distributed, as started by
``torchrun --nproc_per_node N -m fer train …``: gloo on CPUs, NCCL on GPUs (one GPU per process).

Every helper is a no-op in a single process, so training and evaluation have one code path. Rank 0
alone logs and writes files; collectives (`all_reduce_sum`, `gather`) make every rank reach the
same decisions (best epoch, scores) from the same numbers.

Also here: what only makes sense on a GPU (mixed precision, channels-last, pinned memory), so the
training loop stays device-agnostic. Importing it imports no torch (the helpers do), so the
command line's help stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fer.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Mixed-precision modes of ``train --amp``: "auto" is bf16 on GPUs that have it, else fp16, and
#: off on the CPU (CPU autocast is slower than float32 for these convolutions).
AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the process that logs and writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise InputError(f"${name} must be an integer, got {os.environ[name]!r}") from None


def context() -> Context:
    """The current job's layout: torch.distributed's when a process group is up, else one process."""
    import torch
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Context(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                       _env_int("LOCAL_RANK", torch.distributed.get_rank()))
    return Context()


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Context]:
    """Join the job torchrun described in the environment (``WORLD_SIZE`` > 1) for the duration of
    the block, on gloo (CPU) or NCCL (CUDA); a single process, or one already in a group, is left as is."""
    import torch
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        yield context()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, rank=_env_int("RANK", 0), world_size=world)
    try:
        yield context()
    finally:
        torch.distributed.destroy_process_group()


def device_for(device: torch.device, ctx: Context) -> torch.device:
    """The device this rank uses: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``device``."""
    if device.type == "cuda" and ctx.world_size > 1:
        import torch

        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def shard(n: int, ctx: Context) -> slice:
    """This rank's contiguous part of ``n`` items (sizes differ by at most one, as `numpy.array_split`)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (ctx.rank < extra))


def batch_share(n: int, ctx: Context) -> slice:
    """This rank's rows of a global training batch of ``n`` rows.

    The batch is split over ``min(world_size, n // 2)`` ranks, so that every rank that trains gets
    at least 2 rows (BatchNorm cannot train on one); the others get none for that step and still
    join its gradient all-reduce with zero gradients. Every batch one process trains is thus
    trained by N processes too, with the same rows: the last short batch included.
    """
    active = max(1, min(ctx.world_size, n // 2))
    if ctx.rank >= active:
        return slice(n, n)
    return shard(n, Context(ctx.rank, active, ctx.local_rank))


def all_reduce_sum(values: np.ndarray, ctx: Context) -> np.ndarray:
    """Element-wise sum of ``values`` over all ranks (the same array comes back on every rank)."""
    if ctx.world_size == 1:
        return values
    import torch

    t = torch.from_numpy(np.ascontiguousarray(values, np.float64))
    torch.distributed.all_reduce(t)
    return t.numpy().astype(values.dtype)


def gather(obj: Any, ctx: Context) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if ctx.world_size == 1:
        return [obj]
    import torch

    out: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, ctx: Context) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if ctx.world_size == 1:
        return obj
    import torch

    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written a file the others read)."""
    if ctx.world_size > 1:
        import torch

        torch.distributed.barrier()


def wrap(module: nn.Module, device: torch.device, ctx: Context) -> nn.Module:
    """``module`` ready for the job: DistributedDataParallel over ranks (with SyncBatchNorm on GPUs,
    so batch statistics are those of the global batch, as in one process). PyTorch has no CPU
    SyncBatchNorm: on gloo, BatchNorm layers see each rank's share of the batch."""
    if ctx.world_size == 1:
        return module
    from torch import nn

    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return nn.parallel.DistributedDataParallel(module, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(module)


def resolve_amp(amp: str, device: torch.device) -> str:
    """The mixed-precision mode ``amp`` means on ``device``: "off", "bf16" or "fp16"."""
    if amp not in AMP_MODES:
        raise InputError(f"amp must be one of {', '.join(AMP_MODES)}, not {amp!r}")
    if device.type != "cuda":
        if amp in ("bf16", "fp16"):
            raise InputError(f"--amp {amp} needs a CUDA device; this run is on {device}")
        return "off"
    if amp == "auto":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """The forward-pass context for a resolved ``amp`` mode (a no-op when "off")."""
    if amp == "off":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (whose small gradients would underflow); disabled for bf16 and float32."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=amp == "fp16")


def loader_settings(device: torch.device, workers: int | None) -> dict[str, Any]:
    """DataLoader options: worker processes and pinned memory on GPUs (host-to-device copies
    overlap compute), none on the CPU, where workers would compete with the model for the cores."""
    if device.type != "cuda":
        return {"num_workers": workers or 0, "pin_memory": False}
    count = min(4, os.cpu_count() or 1) if workers is None else workers
    return {"num_workers": count, "pin_memory": True, "persistent_workers": False}
