"""Pictures of results: heatmap overlays, the CNN's input, boxes with labels.

Per-frame rendering is numpy + OpenCV with a colour lookup table built once at import; matplotlib
is used only for plots (confusion matrices, timelines), never per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer.pipeline import Prediction


def _table(cv_map: int) -> np.ndarray:
    """OpenCV's colour map ``cv_map`` as a ``(256, 3)`` uint8 RGB table."""
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv_map)[:, 0, ::-1].copy()


#: The colour maps of the two kinds of map, built once: where humans look (saliency) in viridis,
#: the CNN's Grad-CAM in inferno, so the two are never read as one (both perceptually uniform,
#: readable by most colour-blind viewers, and dark-to-light so "low → high" needs no legend to
#: learn); ``"turbo"`` (Mikhailov 2019) for anything else.
PALETTES: dict[str, np.ndarray] = {
    "saliency": _table(cv2.COLORMAP_VIRIDIS),
    "attention": _table(cv2.COLORMAP_INFERNO),
    "turbo": _table(cv2.COLORMAP_TURBO),
}
# The same tables shaped (256, 1, 3), as cv2.applyColorMap takes a user colour map (RGB order kept).
_PALETTES_CV: dict[str, np.ndarray] = {name: table[:, None, :].copy() for name, table in PALETTES.items()}


def palette_stops(palette: str, stops: int = 6) -> list[str]:
    """``stops`` colours of a palette from low to high as ``"#rrggbb"``, for an HTML colour key."""
    table = PALETTES[palette]
    return ["#" + bytes(table[round(i * 255 / (stops - 1))].tolist()).hex() for i in range(stops)]


#: One colour per canonical expression (RGB), used for boxes and labels.
LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 57, 70), "disgust": (106, 153, 78), "fear": (155, 93, 229), "happy": (255, 190, 11),
    "sad": (58, 134, 255), "surprise": (251, 86, 7), "neutral": (173, 181, 189), "contempt": (131, 56, 236),
}
_DEFAULT_COLOUR = (0, 200, 255)


def label_colour_hex(label: str) -> str:
    """A label's colour (`LABEL_COLOURS`, else the default) as ``"#rrggbb"``, for HTML and SVG."""
    return "#" + bytes(LABEL_COLOURS.get(label, _DEFAULT_COLOUR)).hex()


def colorize(heat: np.ndarray, palette: str = "turbo") -> np.ndarray:
    """Map ``(h, w)`` float values in [0, 1] to ``(h, w, 3)`` uint8 RGB with a `PALETTES` colour map."""
    index = (np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.applyColorMap(index, userColor=_PALETTES_CV[palette])


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, palette: str = "turbo") -> np.ndarray:
    """Blend a heatmap over an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        heat: ``(h, w)`` float32 in [0, 1]; resized to ``(H, W)`` if needed.
        alpha: weight of the colour map where ``heat`` is 1; where it is 0 the image shows at
            ``1 - alpha / 2``, so cold regions stay readable.
        palette: a `PALETTES` key.
    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    height, width = image.shape[:2]
    if heat.shape != (height, width):
        heat = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(heat, 0.0, 1.0, dtype=np.float32)
    weight = heat * np.float32(0.5 * alpha) + np.float32(0.5 * alpha)
    # One OpenCV pass with per-pixel weights (rounded) instead of five image-sized float32 temporaries.
    return cv2.blendLinear(image, colorize(heat, palette), 1.0 - weight, weight)


def annotate(frame: np.ndarray, predictions: Sequence[Prediction], names: Sequence[str] | None = None) -> np.ndarray:
    """Draw a box and "label p%" for each face on a copy of ``frame`` (``(H, W, 3)`` uint8 RGB).

    ``names`` optionally prefixes each label (e.g. track ids ``"#1"``).
    """
    faces = []
    for i, pred in enumerate(predictions):
        label, prob = pred.top_k(1)[0]
        faces.append((pred.box, label, f"{names[i]} {label} {prob:.0%}" if names else f"{label} {prob:.0%}"))
    return draw_boxes(frame, faces)


def draw_boxes(frame: np.ndarray, faces: Sequence[tuple[Sequence[int], str, str]]) -> np.ndarray:
    """Draw each ``(box (x0, y0, x1, y1) pixels, label, text)`` on a copy of ``frame`` (``(H, W, 3)``
    uint8 RGB): the box and a text tag in the label's colour."""
    out = frame.copy()
    height, width = frame.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.4, min(height, width) / 900)
    for box, label, text in faces:
        x0, y0, x1, y1 = (int(v) for v in box)
        colour = LABEL_COLOURS.get(label, _DEFAULT_COLOUR)
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thickness + 1)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(height - 1, y1 + th + 4)
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 4, ty + base // 2), colour, -1)
        cv2.putText(out, text, (x0 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return out


def cnn_view(model_input: np.ndarray, input_size: int, colour: str, size: int | None = None) -> np.ndarray:
    """What the CNN literally receives, enlarged for display: the model input resized to the
    network's input size (grey for grey models), then scaled back with visible pixels.

    Args:
        model_input: ``(S, S, 3)`` uint8 RGB, `fer.pipeline.Prediction.model_input`.
        input_size: the network's input side; colour: ``"grey"`` or ``"rgb"``.
        size: side of the result (default ``S``).
    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    size = size or model_input.shape[0]
    small = cv2.resize(model_input, (input_size, input_size), interpolation=cv2.INTER_AREA)
    if colour == "grey":
        small = np.repeat(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)


def prediction_views(pred: Prediction, input_size: int, colour: str, alpha: float = 0.5) -> dict[str, np.ndarray]:
    """The per-face pictures the app, ``predict --save-maps`` and evaluation show, each
    ``(S, S, 3)`` uint8 RGB.

    Keys: ``"crop"`` (the aligned face), ``"input"`` (what the CNN sees, `cnn_view`, at the model's
    ``input_size`` and ``colour``), and, when computed, ``"saliency"`` (where humans would look)
    and ``"attention"`` (Grad-CAM), each in its own colour map (`PALETTES`).
    """
    views = {"crop": pred.crop, "input": cnn_view(pred.model_input, input_size, colour)}
    if pred.saliency is not None:
        views["saliency"] = heatmap_overlay(pred.crop, pred.saliency, alpha, "saliency")
    if pred.attention is not None:
        views["attention"] = heatmap_overlay(pred.crop, pred.attention, alpha, "attention")
    return views


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) as PNG; returns the path."""
    path = Path(path)
    Image.fromarray(image).save(path, format="PNG")
    return path
