"""The timed stages: every step of the pipeline on one frame, every registered model side by side,
the app's live handler, and the CNN by torch thread count."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from fer.bench.frames import FRAMES, JPEG_QUALITY
from fer.bench.timing import Stage, summarise, time_calls
from fer.errors import InputError


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

    from fer.crops import crop_face
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
        Stage(name, "CNN forward", lambda: pipe.main.classify(x), []),
        Stage(name, "Grad-CAM", lambda: pipe.main.classify(x, attention=True, targets=targets, size=size), []),
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
                       Stage(name, f"CNN forward: {net_name}", functools.partial(net.classify, x), [])]
        stages += [
            Stage(name, f"classify faces: {model}", functools.partial(pipe.predict_faces, faces, attention=False), []),
            Stage(name, f"pipeline: detect → classify: {model}", functools.partial(pipe, frame), []),
        ]
    return stages


def _cut_all(frame: np.ndarray, faces: Sequence[Any], style: Any, size: int) -> list[Any]:
    """Every face's crop in ``style`` (a `fer.crops.CropStyle`), as detection cuts them."""
    from fer.crops import cut_crop

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
