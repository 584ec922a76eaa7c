"""Timing: stages run interleaved on fixed inputs, cold start in fresh processes, and the machine
they ran on."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer.bench.frames import ROOT


@dataclass
class Stage:
    """One timed step: ``fn`` runs it once on fixed inputs; ``ms`` collects its wall times."""

    frame: str
    name: str
    fn: Callable[[], object]
    ms: list[float]

    def row(self) -> dict[str, Any]:
        """JSON row: frame, stage, p50/p90/mean in ms, sample count."""
        return {"frame": self.frame, "stage": self.name, **summarise(self.ms)}


def summarise(ms: Sequence[float]) -> dict[str, Any]:
    """``{"ms_p50", "ms_p90", "ms_mean", "n"}`` of wall times in milliseconds (rounded to µs)."""
    values = np.asarray(ms, np.float64)
    if values.size == 0:
        return {"ms_p50": None, "ms_p90": None, "ms_mean": None, "n": 0}
    p50, p90 = np.percentile(values, [50, 90])
    return {"ms_p50": round(float(p50), 3), "ms_p90": round(float(p90), 3), "ms_mean": round(float(values.mean()), 3),
            "n": int(values.size)}


def time_interleaved(stages: Sequence[Stage], iterations: int, warmup: int) -> None:
    """Run every stage once per round, ``warmup`` untimed rounds then ``iterations`` timed ones.

    Interleaving (rather than timing each stage in its own loop) gives every stage the same share of
    whatever else the machine is doing, and the same cache state a real frame sees.
    """
    for _ in range(warmup):
        for stage in stages:
            stage.fn()
    for _ in range(iterations):
        for stage in stages:
            start = time.perf_counter_ns()
            stage.fn()
            stage.ms.append((time.perf_counter_ns() - start) / 1e6)


def time_calls(fn: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Wall times in ms of ``iterations`` calls of ``fn`` after ``warmup`` untimed ones."""
    stage = Stage("", "", fn, [])
    time_interleaved([stage], iterations, warmup)
    return stage.ms


_COLD_START = r"""
import time
t0 = time.perf_counter()
import fer
from fer import pipeline
t1 = time.perf_counter()
import torch
torch.set_num_threads(THREADS)
pipe = fer.load(saliency="face-prior", attention=True)
t2 = time.perf_counter()
from fer.io import read_image
frame = read_image(FRAME_PATH)
t3 = time.perf_counter()
pipe(frame)
t4 = time.perf_counter()
from fer.bench import render_views
for _ in range(FRAMES):
    render_views(frame, pipe(frame))
import json
from fer.bench.timing import peak_rss_mb
pipe.close()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_frame_s": t4 - t3, "rss_mb": peak_rss_mb()}))
"""


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB: Linux's ``VmHWM`` (the high-water mark of its
    address space, which starts afresh at exec), else ``ru_maxrss``. Not ``ru_maxrss`` on Linux:
    it survives fork and exec, so a child started by a big parent reports the parent's peak (the
    benchmark printed 937.9 MB, its own, for its cold-start child)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)  # macOS counts bytes, Linux KiB


def cold_start(frame: np.ndarray, runs: int = 2, frames: int = 20, threads: int = 1) -> dict[str, Any]:
    """Import + load in fresh processes (torch on ``threads`` CPU threads), then ``frames`` whole
    frames for the memory peak.

    The first of several runs only warms the OS file cache and is dropped; the median of the rest is
    reported. Returns ``{"cold_start_s" (import + load), "import_s", "load_s", "first_frame_ms",
    "rss_mb" (peak resident memory of that process), "process_s" (wall time of the whole process),
    "runs"}``.
    """
    from fer.viz import save_png

    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        path = save_png(Path(tmp) / "frame.png", frame)
        code = (_COLD_START.replace("FRAME_PATH", repr(str(path))).replace("FRAMES", str(frames))
                .replace("THREADS", str(threads)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        results = []
        for _ in range(max(1, runs)):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp,
                                  timeout=300)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"cold-start process failed: {tail}")
            results.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall})
    kept = results[1:] if len(results) > 1 else results

    def median(key: str) -> float:
        return float(np.median([r[key] for r in kept]))

    return {
        "cold_start_s": round(median("import_s") + median("load_s"), 3),
        "import_s": round(median("import_s"), 3),
        "load_s": round(median("load_s"), 3),
        "first_frame_ms": round(1000 * median("first_frame_s"), 1),
        "rss_mb": round(max(r["rss_mb"] for r in kept), 1),
        "process_s": round(median("process_s"), 3),
        "runs": len(kept),
    }


def _version(distribution: str) -> str | None:
    """An installed distribution's version, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, load average and library versions, so a reader can tell which machine a JSON is from."""
    import cv2
    import mediapipe
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": usable,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mediapipe": mediapipe.__version__,
        "ai_edge_litert": _version("ai-edge-litert"),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
