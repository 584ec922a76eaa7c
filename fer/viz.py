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

# Turbo (Mikhailov 2019): perceptually smoother than jet and readable by most colour-blind viewers.
_LUT: np.ndarray = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].copy()
# The same table shaped (256, 1, 3), as cv2.applyColorMap takes a user colour map (RGB order kept).
_LUT_CV: np.ndarray = _LUT[:, None, :].copy()

#: One colour per canonical expression (RGB), used for boxes and labels.
LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (230, 57, 70), "disgust": (106, 153, 78), "fear": (155, 93, 229), "happy": (255, 190, 11),
    "sad": (58, 134, 255), "surprise": (251, 86, 7), "neutral": (173, 181, 189), "contempt": (131, 56, 236),
}
_DEFAULT_COLOUR = (0, 200, 255)


def colorize(heat: np.ndarray) -> np.ndarray:
    """Map ``(h, w)`` float values in [0, 1] to ``(h, w, 3)`` uint8 RGB with the Turbo colour map."""
    index = (np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.applyColorMap(index, userColor=_LUT_CV)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap over an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        heat: ``(h, w)`` float32 in [0, 1]; resized to ``(H, W)`` if needed.
        alpha: weight of the colour map where ``heat`` is 1; where it is 0 the image shows at
            ``1 - alpha / 2``, so cold regions stay readable.
    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    height, width = image.shape[:2]
    if heat.shape != (height, width):
        heat = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(heat, 0.0, 1.0, dtype=np.float32)
    weight = heat * np.float32(0.5 * alpha) + np.float32(0.5 * alpha)
    # One OpenCV pass with per-pixel weights (rounded) instead of five image-sized float32 temporaries.
    return cv2.blendLinear(image, colorize(heat), 1.0 - weight, weight)


def frame_heatmap(frame_shape: tuple[int, ...], predictions: Sequence[Prediction], kind: str = "saliency") -> np.ndarray:
    """Put each face's crop-aligned map back into frame coordinates.

    Args:
        frame_shape: ``(H, W, ...)`` of the frame.
        predictions: faces with ``kind`` maps (``"saliency"`` or ``"attention"``).
    Returns:
        ``(H, W)`` float32 in [0, 1]: the per-pixel maximum over faces, 0 outside every face.
    """
    height, width = frame_shape[:2]
    heat = np.zeros((height, width), np.float32)
    for pred in predictions:
        face_map = getattr(pred, kind)
        if face_map is None:
            continue
        warped = cv2.warpAffine(
            face_map.astype(np.float32), pred.face.to_crop, (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0,
        )
        np.maximum(heat, warped, out=heat)
    return heat


def frame_overlay(frame: np.ndarray, predictions: Sequence[Prediction], kind: str = "saliency", alpha: float = 0.5) -> np.ndarray:
    """``(H, W, 3)`` uint8 frame with every face's ``kind`` map overlaid in place (rest untouched)."""
    heat = frame_heatmap(frame.shape, predictions, kind)
    out = heatmap_overlay(frame, heat, alpha)
    inside = heat > 0
    result = frame.copy()
    result[inside] = out[inside]
    return result


def annotate(frame: np.ndarray, predictions: Sequence[Prediction], names: Sequence[str] | None = None) -> np.ndarray:
    """Draw a box and "label p%" for each face on a copy of ``frame`` (``(H, W, 3)`` uint8 RGB).

    ``names`` optionally prefixes each label (e.g. track ids ``"#1"``).
    """
    out = frame.copy()
    height, width = frame.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.4, min(height, width) / 900)
    for i, pred in enumerate(predictions):
        x0, y0, x1, y1 = pred.box
        label, prob = pred.top_k(1)[0]
        colour = LABEL_COLOURS.get(label, _DEFAULT_COLOUR)
        text = f"{names[i]} {label} {prob:.0%}" if names else f"{label} {prob:.0%}"
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, thickness + 1)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        ty = y0 - 4 if y0 - th - base - 4 >= 0 else min(height - 1, y1 + th + 4)
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 4, ty + base // 2), colour, -1)
        cv2.putText(out, text, (x0 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return out


def prediction_views(pred: Prediction, alpha: float = 0.5) -> dict[str, np.ndarray]:
    """The per-face pictures the app and ``predict --save-maps`` show, each ``(S, S, 3)`` uint8 RGB.

    Keys: ``"crop"`` (the aligned face), ``"input"`` (what the CNN saw: face × saliency when on),
    and, when computed, ``"saliency"`` (where humans would look) and ``"attention"`` (Grad-CAM).
    """
    views = {"crop": pred.crop, "input": pred.model_input}
    if pred.saliency is not None:
        views["saliency"] = heatmap_overlay(pred.crop, pred.saliency, alpha)
    if pred.attention is not None:
        views["attention"] = heatmap_overlay(pred.crop, pred.attention, alpha)
    return views


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) as PNG; returns the path."""
    path = Path(path)
    Image.fromarray(image).save(path, format="PNG")
    return path
