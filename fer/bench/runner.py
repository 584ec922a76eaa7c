"""The benchmark run: every stage timed on both frames, then the headline numbers and the targets."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fer.bench.frames import FRAME_SHAPE, FRAMES, compose_frame
from fer.bench.stages import _close_app_pipelines, frame_stages, live_step_stage, model_stages, thread_sweep
from fer.bench.timing import Stage, cold_start, machine_info, peak_rss_mb, time_interleaved
from fer.errors import InputError

#: Targets of issue 8, checked on the numbers measured (never in unit tests).
TARGETS = {
    "pipeline_over_detector": ("<=", 3.0),
    "fps": (">=", 30.0),
    "cold_start_s": ("<=", 3.0),
    "rss_mb": ("<=", 1536.0),
}


def run_benchmark(
    iterations: int = 30,
    warmup: int = 5,
    full: bool = False,
    cold_runs: int = 2,
    live: bool = True,
    progress: Callable[[str], None] | None = None,
    engine: str = "auto",
    detector_engine: str = "auto",
) -> dict[str, Any]:
    """Run the benchmark and return its JSON document (see the module docstring).

    Args:
        iterations: timed rounds per frame.
        warmup: untimed rounds first.
        full: also the other detector on the one-face frame, PNG decode and a CNN thread sweep.
        cold_runs: fresh processes for cold start and memory (the first is dropped when > 1).
        live: also time the app's live handler (`fer.app.live.step`).
        progress: called with a short line before each phase.
        engine: what runs the CNN (`fer.load`'s ``engine``); cold start always uses the default.
        detector_engine: what runs the face detector (`fer.load`'s ``detector_engine``); unless it is
            MediaPipe, MediaPipe's Tasks detector is timed beside it.
    """
    import fer
    from fer.face import FaceDetector
    from fer.models import ENSEMBLES, PRETRAINED

    say = progress or (lambda _line: None)
    if iterations < 1 or warmup < 0:
        raise InputError("iterations must be >= 1 and warmup >= 0")
    started = time.perf_counter()
    machine = machine_info()
    frames = {name: compose_frame(name) for name in FRAMES}
    pipes = {det: fer.load(saliency="face-prior", detector=det, engine=engine,  # type: ignore[arg-type]
                           detector_engine=detector_engine)  # type: ignore[arg-type]
             for det in ("short", "full")}
    # Every registered network and ensemble, with the main pipelines' settings, for the model rows.
    models = {det: {m: fer.load(m, saliency="face-prior", detector=det, engine=engine,  # type: ignore[arg-type]
                                detector_engine=detector_engine)  # type: ignore[arg-type]
                    for m in [*PRETRAINED, *ENSEMBLES]}
              for det in ("short", "full")}
    references: dict[str, FaceDetector] = {}
    import torch

    machine["torch_threads"] = torch.get_num_threads()  # as the entry point set it
    try:
        references.update({det: FaceDetector(det, engine="mediapipe")  # type: ignore[arg-type]
                           for det, p in pipes.items() if p.detector.engine != "mediapipe"})
        doc: dict[str, Any] = {"benchmark": "python -m fer bench", "fer_version": fer.__version__,
                               "mode": "full" if full else "quick", "iterations": iterations, "warmup": warmup,
                               "frame_size": [FRAME_SHAPE[1], FRAME_SHAPE[0]], "machine": machine, "frames": {},
                               "engine": pipes["short"].model.engine}
        all_stages: list[Stage] = []
        for name, frame in frames.items():
            say(f"timing stages: {name}")
            detector = FRAMES[name][1]
            stages, info = frame_stages(name, frame, pipes[detector], full, references.get(detector))
            stages += model_stages(name, frame, models[detector])
            info["faces_found_by"] = {det: len(p.detect(frame)) for det, p in pipes.items()}
            if live and name == "1 face":
                stages.append(live_step_stage(frame))
            if full:
                other = "full" if detector == "short" else "short"
                if info["faces_found_by"][other]:
                    other_detect = functools.partial(pipes[other].detector.detections, frame)
                    stages.insert(2, Stage(name, f"detect ({other} range)", other_detect, []))
            time_interleaved(stages, iterations, warmup)
            doc["frames"][name] = info
            all_stages += stages
        doc["stages"] = [s.row() for s in all_stages]
        if full:
            say("CNN thread sweep")
            crops = np.stack([f.crop for f in pipes["short"].detect(frames["1 face"])])
            doc["cnn_threads"] = thread_sweep(pipes["short"], crops, iterations)
        say("cold start (fresh processes)")
        cold = cold_start(frames["1 face"], runs=cold_runs, threads=torch.get_num_threads())
        doc["cold_start"] = cold
        doc["bench_rss_mb"] = round(peak_rss_mb(), 1)
    finally:
        for pipe in [*pipes.values(), *(p for by_model in models.values() for p in by_model.values())]:
            pipe.close()
        for reference in references.values():
            reference.close()
        if live:
            _close_app_pipelines()
    _headline(doc)
    doc["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    doc["bench_s"] = round(time.perf_counter() - started, 1)
    return doc


def stage_ms(doc: dict[str, Any], frame: str, stage: str, key: str = "ms_p50") -> float | None:
    """One number of the stage table (None when that row was not measured)."""
    for row in doc["stages"]:
        if row["frame"] == frame and row["stage"] == stage:
            return row[key]
    return None


def _headline(doc: dict[str, Any]) -> None:
    """Add the top-level numbers and the target check to ``doc``."""
    one = "1 face"
    detector = f"detect ({FRAMES[one][1]} range)"
    pipeline = stage_ms(doc, one, "whole frame (pixels in)")
    detect = stage_ms(doc, one, detector)
    classify = stage_ms(doc, one, "pipeline: detect → classify")
    frame = stage_ms(doc, one, "whole frame (JPEG in)")
    decode = stage_ms(doc, one, "decode (JPEG)")
    whole_mean = stage_ms(doc, one, "whole frame (JPEG in)", "ms_mean")
    five_mean = stage_ms(doc, "5 faces", "whole frame (JPEG in)", "ms_mean")
    doc.update({
        "pipeline_ms_p50": pipeline,
        "pipeline_ms_p90": stage_ms(doc, one, "whole frame (pixels in)", "ms_p90"),
        "detector_ms_p50": detect,
        "classify_ms_p50": classify,
        "frame_ms_p50": frame,
        "decode_ms_p50": decode,
        # Both sides from the same input: pixels in memory (the detector alone gets decoded pixels too).
        "pipeline_over_detector": round(pipeline / detect, 2) if pipeline and detect else None,
        # Both sides from a JPEG: the whole frame against decode + detector.
        "frame_over_decode_and_detector": round(frame / (decode + detect), 2) if frame and decode and detect else None,
        "classify_over_detector": round(classify / detect, 2) if classify and detect else None,
        "fps": round(1000.0 / whole_mean, 1) if whole_mean else None,
        "fps_5_faces": round(1000.0 / five_mean, 1) if five_mean else None,
        "live_step_ms_p50": stage_ms(doc, one, "app live step (fer.app.live)"),
        "cold_start_s": doc["cold_start"]["cold_start_s"],
        "rss_mb": doc["cold_start"]["rss_mb"],
    })
    prefix = "classify faces: "
    models = dict.fromkeys(row["stage"][len(prefix):] for row in doc["stages"] if row["stage"].startswith(prefix))
    doc["models"] = {m: {f: {"classify_ms_p50": stage_ms(doc, f, prefix + m),
                             "pipeline_ms_p50": stage_ms(doc, f, f"pipeline: detect → classify: {m}")}
                         for f in doc["frames"]} for m in models}
    doc["targets"] = {}
    for key, (op, limit) in TARGETS.items():
        value = doc.get(key)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        doc["targets"][key] = {"target": f"{op} {limit:g}", "value": value, "met": met}
