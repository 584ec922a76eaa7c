"""Speed benchmark: ``python -m fer bench [--json] [--full]``.

Measures every stage of the pipeline on two 640×480 frames composed from the shipped assets (one
face, and five faces of decreasing size), each stage on fixed inputs, interleaved frame by frame
so that a change in machine load hits every stage alike:

decode (JPEG) → detect (the face detector alone: network and decoding, no crops; and MediaPipe's
Tasks detector on the same model, for comparison) → crop/align → each saliency predictor → face × saliency
→ preprocess → CNN forward → Grad-CAM → overlay rendering,

then end to end: ``Pipeline.__call__`` (detect → classify, what the ``fer`` PyPI package's
``detect_emotions`` does), the whole frame (detect → … → overlays, Grad-CAM for every face; from
pixels in memory, the detector-alone baseline's input, and from a JPEG, decode included) and the
app's live handler (`fer.app.live.step`), plus cold start and peak memory of a fresh process.
Every registered expression model (each network and each ensemble, `model_stages`) is timed on the
same frames: its crop, its CNN, classifying the detected faces and detect → classify.

The quick form (default) takes well under a minute on 2 cores; ``--full`` runs more iterations and
adds the other detector, a thread sweep of the CNN and a PNG decode.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

#: Frame size (height, width): a VGA webcam frame.
FRAME_SHAPE = (480, 640)
#: The astronaut's face box in ``assets/astronaut.png`` (x0, y0, x1, y1), as the short-range detector finds it.
ASTRONAUT_FACE_BOX = (177, 82, 272, 177)
#: Side of the pasted face patch (the face box enlarged 1.8×) in the one-face frame: a face of about
#: 145 px, someone sitting at a laptop's webcam.
ONE_FACE_SIDE = 260
#: Patch sides and top-left corners of the five-face frame. The short-range detector finds only
#: some of faces this small; the full-range one finds all five, so that frame uses it.
FIVE_FACES = ((170, (20, 40)), (150, (230, 40)), (140, (440, 40)), (130, (120, 280)), (120, (360, 280)))
#: Frame name → (patches, detector used for it).
FRAMES: dict[str, tuple[tuple[tuple[int, tuple[int, int]], ...], str]] = {
    "1 face": (((ONE_FACE_SIDE, ((FRAME_SHAPE[1] - ONE_FACE_SIDE) // 2, (FRAME_SHAPE[0] - ONE_FACE_SIDE) // 2)),), "short"),
    "5 faces": (FIVE_FACES, "full"),
}
#: JPEG quality of the encoded frames (what a browser's webcam capture typically sends).
JPEG_QUALITY = 90

#: Targets of issue 8, checked on the numbers measured (never in unit tests).
TARGETS = {
    "pipeline_over_detector": ("<=", 3.0),
    "fps": (">=", 30.0),
    "cold_start_s": ("<=", 3.0),
    "rss_mb": ("<=", 1536.0),
}


# --------------------------------------------------------------------------- frames


def _face_patch() -> np.ndarray:
    """``(P, P, 3)`` uint8 RGB: the astronaut's face box enlarged 1.8× (some hair, neck and background)."""
    from fer.io import read_image

    image = read_image(ASSETS / "astronaut.png")
    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.9 * max(x1 - x0, y1 - y0)
    return image[int(cy - half):int(cy + half), int(cx - half):int(cx + half)]


def _background() -> np.ndarray:
    """``(480, 640, 3)`` uint8 RGB: the coffee photo (no face), cropped to 4:3 and resized, so the
    detector scans real texture rather than a flat canvas."""
    import cv2

    from fer.io import read_image

    image = read_image(ASSETS / "coffee.png")
    height, width = image.shape[:2]
    crop_w = min(width, round(height * FRAME_SHAPE[1] / FRAME_SHAPE[0]))
    crop_h = min(height, round(crop_w * FRAME_SHAPE[0] / FRAME_SHAPE[1]))
    x, y = (width - crop_w) // 2, (height - crop_h) // 2
    return cv2.resize(image[y:y + crop_h, x:x + crop_w], FRAME_SHAPE[::-1], interpolation=cv2.INTER_AREA)


def compose_frame(name: str) -> np.ndarray:
    """A benchmark frame: ``(480, 640, 3)`` uint8 RGB with scaled copies of the astronaut's face
    pasted on the coffee photo.

    Args:
        name: a key of `FRAMES` (``"1 face"`` or ``"5 faces"``).
    """
    import cv2

    if name not in FRAMES:
        raise InputError(f"unknown benchmark frame {name!r}; choose one of {', '.join(FRAMES)}")
    patch = _face_patch()
    frame = _background()
    for side, (x, y) in FRAMES[name][0]:
        frame[y:y + side, x:x + side] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    return frame


# --------------------------------------------------------------------------- timing


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


# --------------------------------------------------------------------------- stages


def frame_stages(name: str, frame: np.ndarray, pipe: Any, full: bool,
                 reference: Any | None = None) -> tuple[list[Stage], dict[str, Any]]:
    """The timed stages of one frame and facts about it (faces found by each detector).

    Args:
        name: frame name (a key of `FRAMES`).
        frame: ``(480, 640, 3)`` uint8 RGB.
        pipe: a `fer.pipeline.Pipeline` with a saliency predictor, using this frame's detector.
        full: add rows that only ``--full`` measures (PNG decode).
        reference: a `fer.face.FaceDetector` on MediaPipe with the same model, timed beside ours
            (the before of the LiteRT engine); None leaves that row out.
    """
    import torch

    from fer.face import crop_face
    from fer.io import encode_image, read_image
    from fer.models import cam_layer, preprocess_array
    from fer.saliency import apply_saliency, available_saliency, load_saliency

    jpeg = encode_image(frame, "jpeg", JPEG_QUALITY)
    faces = pipe.detect(frame)
    if not faces:
        raise InputError(f"benchmark frame {name!r}: the {pipe.detector.model} detector found no face")
    crops = np.stack([f.crop for f in faces])
    keypoints = np.stack([f.crop_keypoints for f in faces])
    predictors = {n: load_saliency(n) for n in available_saliency()}
    maps = pipe.saliency_maps(pipe.saliency_name, crops, keypoints)
    spec, module = pipe.spec, pipe.model.module
    x = preprocess_array(crops, spec)
    x_torch = torch.from_numpy(x).to(memory_format=torch.channels_last)
    layer = cam_layer(module, spec)
    predictions = pipe.predict_faces(faces, attention=True)
    targets = [int(p.probabilities.argmax()) for p in predictions]
    margin, size = pipe.detector.margin, pipe.detector.crop_size

    def crop_all() -> object:
        return [crop_face(frame, f.keypoints, f.box, margin, size) for f in faces]

    def torch_forward() -> object:
        with torch.inference_mode():
            return torch.softmax(module(x_torch), dim=1).numpy()

    def torch_grad_cam() -> object:
        from fer.gradcam import grad_cam

        return grad_cam(module, layer, x_torch, targets, size=size)

    def render() -> object:
        return render_views(frame, predictions)

    def whole(image: np.ndarray) -> object:
        return render_views(image, pipe(image, attention=True))

    stages = [Stage(name, "decode (JPEG)", lambda: read_image(jpeg), [])]
    if full:
        png = _encode_png(frame)
        stages.append(Stage(name, "decode (PNG)", lambda: read_image(png), []))
    stages += [
        Stage(name, f"detect ({pipe.detector.model} range)", lambda: pipe.detector.detections(frame), []),
        *([Stage(name, f"detect, MediaPipe Tasks ({reference.model} range)", lambda: reference.detections(frame), [])]
          if reference is not None else []),
        Stage(name, "crop/align", crop_all, []),
        *(Stage(name, f"saliency: {n}", functools.partial(p, crops, keypoints), []) for n, p in predictors.items()),
        Stage(name, "face × saliency", lambda: apply_saliency(crops, maps, pipe.saliency_floor), []),
        Stage(name, "preprocess", lambda: preprocess_array(crops, spec), []),
        Stage(name, "CNN forward", lambda: pipe.classify(x), []),
        Stage(name, "Grad-CAM", lambda: pipe.classify(x, attention=True, targets=targets, size=size), []),
        # The same two in plain PyTorch (eager forward; Grad-CAM with a backward pass), the path the
        # pipeline took before the OpenCV DNN engine and the backward-free Grad-CAM: the before/after.
        Stage(name, "CNN forward (PyTorch)", torch_forward, []),
        Stage(name, "Grad-CAM (PyTorch autograd)", torch_grad_cam, []),
        Stage(name, "overlay rendering", render, []),
        Stage(name, "pipeline: detect → classify", lambda: pipe(frame), []),
        Stage(name, "whole frame (pixels in)", lambda: whole(frame), []),
        Stage(name, "whole frame (JPEG in)", lambda: whole(read_image(jpeg)), []),
    ]
    info = {"faces_placed": len(FRAMES[name][0]), "detector": pipe.detector.model,
            "detector_engine": pipe.detector.engine, "faces_found": len(faces),
            "crop_size": size, "saliency": pipe.saliency_name, "engine": pipe.model.engine}
    return stages, info


def model_stages(name: str, frame: np.ndarray, pipes: dict[str, Any]) -> list[Stage]:
    """The expression models side by side on one frame, each with the settings of the main pipeline.

    Per network: its crop cut from the detected faces and its CNN forward (``crop (NET)``,
    ``CNN forward: NET``, its engine, one batch). Per model (a network or an ensemble): classifying
    the detected faces (``classify faces: MODEL``: the crops in every style were cut by detection;
    saliency, every network, no Grad-CAM) and ``pipeline: detect → classify: MODEL``; an ensemble's
    cost is the difference between these rows and its main member's.

    Args:
        name: frame name (a key of `FRAMES`).
        pipes: model name → `fer.pipeline.Pipeline` using this frame's detector.
    """
    from fer.models import preprocess_array

    stages: list[Stage] = []
    timed: set[str] = set()
    for model, pipe in pipes.items():
        faces = pipe.detect(frame)
        for net_name, net in pipe.networks.items():
            if net_name in timed:
                continue
            timed.add(net_name)
            style = pipe.styles[net_name]
            x = preprocess_array(np.stack([f.crop_in(style) for f in faces]), net.spec)
            cut = functools.partial(_cut_all, frame, faces, style, pipe.detector.crop_size)
            stages += [Stage(name, f"crop ({net_name}: {style.kind}, margin {style.margin:g})", cut, []),
                       Stage(name, f"CNN forward: {net_name}", functools.partial(net.run, x), [])]
        stages += [
            Stage(name, f"classify faces: {model}", functools.partial(pipe.predict_faces, faces, attention=False), []),
            Stage(name, f"pipeline: detect → classify: {model}", functools.partial(pipe, frame), []),
        ]
    return stages


def _cut_all(frame: np.ndarray, faces: Sequence[Any], style: Any, size: int) -> list[Any]:
    """Every face's crop in ``style`` (a `fer.face.CropStyle`), as detection cuts them."""
    from fer.face import cut_crop

    return [cut_crop(frame, f.keypoints, f.box, style, size) for f in faces]


def render_views(frame: np.ndarray, predictions: Sequence[Any]) -> list[np.ndarray]:
    """What the app draws for a frame: the annotated frame and, per face, the saliency and Grad-CAM
    overlays on the crop (`fer.viz`)."""
    from fer import viz

    views = [viz.annotate(frame, predictions)]
    for pred in predictions:
        if pred.saliency is not None:
            views.append(viz.heatmap_overlay(pred.crop, pred.saliency))
        if pred.attention is not None:
            views.append(viz.heatmap_overlay(pred.crop, pred.attention))
    return views


def _encode_png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def live_step_stage(frame: np.ndarray) -> Stage:
    """The app's webcam handler (`fer.app.live.step`, default settings) on one frame as the browser
    sends it (a JPEG data URL): decoding, tracking, smoothing, Grad-CAM of the followed face, the views
    and the timeline once a second."""
    from fer.app import live, media, settings

    current = settings.default_settings()
    url = media.data_url(frame)
    state: dict[str, Any] = {"session": None}

    def step() -> object:
        state["session"], out = live.step(url, current, None, state["session"])
        return out

    return Stage("1 face", "app live step (fer.app.live)", step, [])


def _close_app_pipelines() -> None:
    """Close the pipeline the live handler loaded into `fer.app.settings.PIPELINES` (a detector still
    open at interpreter exit makes mediapipe print a traceback)."""
    app_settings = sys.modules.get("fer.app.settings")
    if app_settings is None:
        return
    app_settings.PIPELINES.get(app_settings.default_settings()).close()
    app_settings.PIPELINES.clear()


# --------------------------------------------------------------------------- cold start


_COLD_START = r"""
import time
t0 = time.perf_counter()
import fer
from fer import pipeline
t1 = time.perf_counter()
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
import json, resource
pipe.close()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_frame_s": t4 - t3,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cold_start(frame: np.ndarray, runs: int = 2, frames: int = 20) -> dict[str, Any]:
    """Import + load in fresh processes, then ``frames`` whole frames for the memory peak.

    The first of several runs only warms the OS file cache and is dropped; the median of the rest is
    reported. Returns ``{"cold_start_s" (import + load), "import_s", "load_s", "first_frame_ms",
    "rss_mb" (peak resident memory of that process), "process_s" (wall time of the whole process),
    "runs"}``.
    """
    from fer.viz import save_png

    with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
        path = save_png(Path(tmp) / "frame.png", frame)
        code = _COLD_START.replace("FRAME_PATH", repr(str(path))).replace("FRAMES", str(frames))
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


# --------------------------------------------------------------------------- machine


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


# --------------------------------------------------------------------------- the benchmark


def thread_sweep(pipe: Any, crops: np.ndarray, iterations: int, threads: Sequence[int] = (1, 2)) -> dict[str, Any]:
    """CNN forward p50 for each torch thread count (batch of ``crops``); restores the setting after."""
    import torch

    from fer.models import preprocess

    x = preprocess(crops, pipe.spec).contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            with torch.inference_mode():
                out[str(n)] = summarise(time_calls(lambda: pipe.model.module(x), iterations, 10))
    finally:
        torch.set_num_threads(before)
    return out


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

    machine["torch_threads"] = torch.get_num_threads()  # as loading left it
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
        cold = cold_start(frames["1 face"], runs=cold_runs)
        doc["cold_start"] = cold
        doc["bench_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
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


# --------------------------------------------------------------------------- output


def format_table(doc: dict[str, Any]) -> str:
    """The stage table as GitHub markdown: one row per stage, p50/p90 per frame."""
    frames = list(doc["frames"])
    names: list[str] = []
    for row in doc["stages"]:
        if row["stage"] not in names:
            names.append(row["stage"])
    found = ", ".join(f"{f}: {doc['frames'][f]['faces_found']} found ({doc['frames'][f]['detector']} range)"
                      for f in frames)
    head = "| stage | " + " | ".join(f"{f} p50 (ms) | {f} p90 (ms)" for f in frames) + " |"
    lines = [f"Frames {doc['frame_size'][0]}×{doc['frame_size'][1]} — {found}.", "", head,
             "|---|" + "---:|" * (2 * len(frames))]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for name in names:
        cells = [cell(stage_ms(doc, f, name, k)) for f in frames for k in ("ms_p50", "ms_p90")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(doc: dict[str, Any]) -> str:
    """Human-readable summary: the stage table, the headline numbers and the targets."""
    m = doc["machine"]
    cold = doc["cold_start"]
    lines = [
        f"fer bench ({doc['mode']}, {doc['iterations']} rounds) on {m['cpu']}, {m['cores']} cores, "
        f"detector on {doc['frames']['1 face'].get('detector_engine', 'mediapipe')}, "
        f"CNN on {doc.get('engine', 'torch')}, torch {m['torch']} with {m['torch_threads']} threads; load average {m['load_average'][0]:.2f} "
        f"at start, {m['load_average_end'][0]:.2f} at end",
        "",
        format_table(doc),
        "",
        f"whole frame from pixels (1 face): p50 {doc['pipeline_ms_p50']:.2f} ms = {doc['pipeline_over_detector']}× "
        f"the detector alone ({doc['detector_ms_p50']:.2f} ms)",
        f"whole frame from a JPEG (1 face): p50 {doc['frame_ms_p50']:.2f} ms = {doc['frame_over_decode_and_detector']}× "
        f"decode + detector; {doc['fps']} frames/s (5 faces: {doc['fps_5_faces']} frames/s)",
        f"detect → classify (1 face): p50 {doc['classify_ms_p50']:.2f} ms = {doc['classify_over_detector']}× the detector",
        f"cold start: {cold['cold_start_s']:.2f} s (import {cold['import_s']:.2f} s + load {cold['load_s']:.2f} s), "
        f"first frame {cold['first_frame_ms']:.0f} ms; peak RSS {cold['rss_mb']:.0f} MB",
    ]
    for model, frames in doc.get("models", {}).items():
        lines.append(f"{model}: classify faces p50 " + ", ".join(
            f"{v['classify_ms_p50']:.2f} ms ({f})" for f, v in frames.items() if v["classify_ms_p50"] is not None)
            + "; detect → classify " + ", ".join(
            f"{v['pipeline_ms_p50']:.2f} ms ({f})" for f, v in frames.items() if v["pipeline_ms_p50"] is not None))
    if doc.get("live_step_ms_p50") is not None:
        lines.append(f"app live step (fer.app.live.step, 1 face): p50 {doc['live_step_ms_p50']:.2f} ms")
    if "cnn_threads" in doc:
        sweep = ", ".join(f"{n} thread(s) {v['ms_p50']:.2f} ms" for n, v in doc["cnn_threads"].items())
        lines.append(f"CNN forward in PyTorch by torch threads (1 face): {sweep}")
    lines.append("targets: " + "; ".join(
        f"{k} {t['target']}: {t['value']} {'met' if t['met'] else 'NOT met'}" for k, t in doc["targets"].items()))
    lines.append(f"benchmark took {doc['bench_s']:.0f} s")
    return "\n".join(lines)


#: How the chart names the detector engines (`fer.face.FaceDetector.engine`).
DETECTOR_ENGINE_NAMES = {"litert": "BlazeFace on LiteRT", "mediapipe": "MediaPipe Tasks"}

#: Stages drawn in the chart, in pipeline order (rows missing from a document are skipped).
CHART_STAGES = ("decode (JPEG)", "crop/align", "saliency: face-prior", "saliency: spectral-residual", "face × saliency",
                "preprocess", "CNN forward", "Grad-CAM", "overlay rendering", "pipeline: detect → classify",
                "whole frame (pixels in)", "whole frame (JPEG in)")


def plot_stages(doc: dict[str, Any], path: str | Path, peer: dict[str, Any] | None = None) -> Path:
    """Horizontal bar chart of the p50 of each stage for both frames (PNG).

    Args:
        doc: a `run_benchmark` document.
        path: PNG to write.
        peer: optional ``{"label": str, "ms_p50": {frame: ms}}`` drawn as an extra bar per frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(doc["frames"])
    rows: list[tuple[str, list[float | None]]] = []
    totals = 0  # rows at the end that are whole runs, not stages
    for name in CHART_STAGES:
        if name == "crop/align":  # the detector sits just before crop/align; each frame has its own
            detectors = [doc["frames"][f]["detector"] for f in frames]
            engines = {DETECTOR_ENGINE_NAMES[doc["frames"][f].get("detector_engine", "mediapipe")] for f in frames}
            ranges = " / ".join(dict.fromkeys(detectors))
            rows.append((f"detect, {' / '.join(sorted(engines))} ({ranges} range)",
                         [stage_ms(doc, f, f"detect ({d} range)") for f, d in zip(frames, detectors, strict=True)]))
            reference = [stage_ms(doc, f, f"detect, MediaPipe Tasks ({d} range)") for f, d in zip(frames, detectors, strict=True)]
            if any(v is not None for v in reference):
                rows.append((f"detect, MediaPipe Tasks ({ranges} range)", reference))
        values = [stage_ms(doc, f, name) for f in frames]
        if any(v is not None for v in values):
            rows.append((name, values))
            totals += name in ("pipeline: detect → classify", "whole frame (pixels in)", "whole frame (JPEG in)")
    if peer:
        rows.append((peer["label"], [peer["ms_p50"].get(f) for f in frames]))
        totals += 1
    rows.reverse()  # matplotlib draws the first row at the bottom
    height = 0.38
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(rows) + 1.9), dpi=110)
    colours = ("#3a86ff", "#fb5607")
    peak = max((v for r in rows for v in r[1] if v is not None), default=1.0)
    for j, f in enumerate(frames):
        ys = [i + (0.5 - j) * height for i in range(len(rows))]
        vals: list[float] = [v if (v := r[1][j]) is not None else 0.0 for r in rows]
        bars = ax.barh(ys, vals, height=height, color=colours[j % 2], label=f"{f} ({doc['frames'][f]['faces_found']} "
                       f"found, {doc['frames'][f]['detector']} range detector)")
        for bar, r in zip(bars, rows, strict=True):
            if r[1][j] is not None:
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r[1][j]:.1f}", va="center", fontsize=7)
    if totals:
        ax.axhline(totals - 0.5, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    for label in ax.get_yticklabels()[:totals]:
        label.set_fontweight("bold")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, peak * 2.5)
    ax.set_xlabel("milliseconds per frame, median (log scale above 1 ms)")
    m = doc["machine"]
    ax.set_title(f"fer stages on a 640×480 frame: {m['cores']} cores of {m['cpu'][:40]}, load {m['load_average'][0]:.1f}\n"
                 f"CNN on {doc.get('engine', 'torch')}, torch {m['torch_threads']} thread(s)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--full", action="store_true",
                        help="more rounds, both detectors, PNG decode and a CNN thread sweep (a few minutes)")
    parser.add_argument("--iterations", type=int, default=None, metavar="N",
                        help="timed rounds per frame (default: 30, or 300 with --full)")
    parser.add_argument("--cold-runs", type=int, default=None, metavar="N",
                        help="fresh processes for cold start and memory; the first only warms the file cache "
                             "when N > 1 (default: 2, or 4 with --full)")
    parser.add_argument("--no-live", action="store_true", help="skip the app's live handler (fer.app.live)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch.set_num_threads(N) first")
    parser.add_argument("--engine", choices=("auto", "opencv", "torch"), default="auto",
                        help="what runs the CNN (default: auto, OpenCV DNN on the CPU when it matches PyTorch)")
    parser.add_argument("--detector-engine", choices=("auto", "litert", "mediapipe"), default="auto",
                        help="what runs the face detector (default: auto, LiteRT when installed)")
    parser.add_argument("--out", type=Path, metavar="JSON", help="also write the JSON document to this file")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw the stage chart to this file")


def run(args: argparse.Namespace) -> int:
    """Run ``bench``; exit 0."""
    iterations = args.iterations if args.iterations is not None else (300 if args.full else 30)
    cold_runs = args.cold_runs if args.cold_runs is not None else (4 if args.full else 2)
    if iterations < 1 or cold_runs < 1:
        raise InputError("--iterations and --cold-runs must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    progress = None if args.json else (lambda line: print(f"… {line}", file=sys.stderr, flush=True))
    doc = run_benchmark(iterations=iterations, warmup=min(10, max(2, iterations // 10)), full=args.full,
                        cold_runs=cold_runs, live=not args.no_live, progress=progress, engine=args.engine,
                        detector_engine=args.detector_engine)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_stages(doc, args.plot)
    print(json.dumps(doc, ensure_ascii=False) if args.json else format_report(doc))
    return 0
