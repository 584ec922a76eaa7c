"""Stopping a training run cleanly when the cluster says so: SIGTERM (what SLURM, Kubernetes and
torchrun send before killing a job) or SIGUSR1 (SLURM's ``--signal=USR1@90`` warning) ask the run to
stop; after the optimizer step in progress, every rank agrees (one all-reduce per step), the
training loop saves a checkpoint at that step and raises `Preempted`. ``--resume`` then continues
from that step and ends bit-identical to a run that was never stopped (`fer.research.train`).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import numpy as np

from fer.research import distributed as dist

#: Signals that ask a run to stop at the next step.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(KeyboardInterrupt):
    """The run stopped on a signal after optimizer step ``step`` of its epoch, its state saved.

    A KeyboardInterrupt: like Ctrl-C it ends the command (``fer train`` says how to resume, and exits
    with 128 + the signal's number, as a shell reports a process ended by that signal).
    """

    def __init__(self, signum: int, step: int, totals: np.ndarray) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}")
        self.signum, self.step, self.totals = signum, step, totals


class StopRequest:
    """Within the block, `STOP_SIGNALS` set a flag instead of ending the process; `check` reads it
    on every rank at once. Outside the main thread (no signal handlers there) it never fires."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def check(self, ctx: dist.Context, values: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """The signal number any rank received (0: none), the same on every rank, and ``values``
        summed over ranks in the same all-reduce (a step's loss and counts, for the step log)."""
        extra = np.zeros(0) if values is None else np.asarray(values, np.float64)
        summed = dist.all_reduce_sum(np.concatenate([[float(self.signum)], extra]), ctx)
        if summed[0] and not self.signum:  # another rank was signalled: stop with it
            self.signum = int(signal.SIGTERM)
        return (int(self.signum) if summed[0] else 0), summed[1:]
