"""Per-step training metrics: ``OUT/steps.csv`` (one row per optimizer step, over all processes),
and TensorBoard scalars in ``OUT/tensorboard`` when ``torch.utils.tensorboard`` can be imported
(its ``tensorboard`` package is not among this project's requirements; without it the CSV alone
is written and the spec's ``training.step_log`` says so). Rank 0 alone writes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

STEP_FILE = "steps.csv"
COLUMNS = ("epoch", "step", "global_step", "images", "loss", "accuracy", "lr")


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` imports (it needs the ``tensorboard`` package)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class StepLog:
    """Appends one row per step; on a resumed run, rows after the resume point (an epoch cut short
    without a step checkpoint) are dropped first, so every step appears once.

    Args:
        out: the run's folder; None writes nothing (ranks other than 0).
        resume_at: ``(epoch, step)`` (1-based epoch, steps done in it) a resumed run starts after;
            None for a fresh run.
    """

    def __init__(self, out: Path | None, resume_at: tuple[int, int] | None = None) -> None:
        self.path = None if out is None else Path(out) / STEP_FILE
        self._writer: Any = None
        if self.path is None:
            return
        kept: list[list[str]] = []
        if resume_at is not None and self.path.is_file():
            with self.path.open(newline="") as fh:
                rows = list(csv.reader(fh))[1:]
            kept = [r for r in rows if len(r) == len(COLUMNS) and (int(r[0]), int(r[1])) <= resume_at]
        with self.path.open("w", newline="") as fh:
            csv.writer(fh).writerows([list(COLUMNS), *kept])
        if tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(out) / "tensorboard"))  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        """What was written, for the spec: ``{"csv", "tensorboard"}`` (tensorboard: a folder or why not)."""
        return {"csv": STEP_FILE, "tensorboard": "tensorboard" if self._writer is not None else
                "not written: torch.utils.tensorboard needs the tensorboard package, which is not installed"}

    def write(self, epoch: int, step: int, global_step: int, images: int, loss: float, accuracy: float,
              lr: float) -> None:
        """One step's row: ``epoch`` 1-based, ``step`` 1-based within it; loss and accuracy are the
        global batch's means, ``lr`` the new classifier's learning rate."""
        if self.path is None:
            return
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow([epoch, step, global_step, images, f"{loss:.6g}", f"{accuracy:.6g}", f"{lr:.6g}"])
        if self._writer is not None:
            for name, value in (("train/loss", loss), ("train/accuracy", accuracy), ("train/lr", lr)):
                self._writer.add_scalar(name, value, global_step)

    def close(self) -> None:
        """Flush TensorBoard (the CSV is closed after every row)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
