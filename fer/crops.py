"""Face crops: how a square face crop is cut from an image around a detected face.

Two kinds (`CropKind`): ``"aligned"`` (`crop_face`: centred on the box, rotated so the eyes are level,
border pixels repeated; what our models are trained on) and ``"box"`` (`box_crop`: the detector's
box itself, axis-aligned and zero-padded to a centred square, as face-api cuts it). A `CropStyle` is a
kind and a margin; each model's spec says which one it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np

from fer.errors import InputError

#: Default margin around the detector's box, as a fraction of the box side on each side.
DEFAULT_MARGIN = 0.2
#: Default side of the square face crop, in pixels.
DEFAULT_CROP_SIZE = 224


#: How a square face crop is made from the detector's box: ``"aligned"`` (`crop_face`: centred on
#: the box, rotated so the eyes are level, border pixels repeated) or ``"box"`` (`box_crop`: the box
#: itself, axis-aligned, zero-padded to a centred square, as face-api does).
CropKind = Literal["aligned", "box"]


@dataclass(frozen=True)
class CropStyle:
    """How one model's face crop is cut: the ``kind`` of square and the ``margin`` around the
    detector's box (a fraction of the box side, on each side, >= 0)."""

    kind: CropKind = "aligned"
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.kind not in get_args(CropKind):
            raise InputError(f"unknown crop kind {self.kind!r}; choose one of {', '.join(get_args(CropKind))}")
        if not 0.0 <= self.margin <= 1.0:
            raise InputError(f"margin must be in [0, 1], got {self.margin}")


def crop_face(
    image: np.ndarray,
    keypoints: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = DEFAULT_MARGIN,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a square, eye-levelled crop around a face.

    The crop is centred on the box centre, its side is the box's longer side times
    ``1 + 2 * margin``, and it is rotated about that centre so the line between the eyes is
    horizontal. Pixels outside the image repeat the border.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints: ``(K, 2)`` float image pixels; rows 0 and 1 are the right and left eye.
        box: ``(x0, y0, x1, y1)`` face box in image pixels.
        margin: extra context on each side, as a fraction of the box side (>= 0).
        crop_size: side ``S`` of the output crop.
    Returns:
        ``(crop (S, S, 3) uint8, crop_keypoints (K, 2) float32, to_crop (2, 3) float32)``.
    """
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    dx, dy = keypoints[1] - keypoints[0]
    theta = math.atan2(dy, dx)
    scale = crop_size / side
    # Rotation by -theta brings the eye line to horizontal; then scale and move the centre to S/2.
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    linear = scale * rot
    shift = crop_size / 2.0 - linear @ centre
    to_crop = np.hstack([linear, shift[:, None]]).astype(np.float32)
    crop = cv2.warpAffine(
        image, to_crop, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    crop_kp = (keypoints @ linear.T + shift).astype(np.float32)
    return crop, crop_kp, to_crop


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """Zero-pad the shorter side of ``(H, W, C)`` to a centred square, as face-api's
    ``padToSquare(isCenterImage=true)`` does: the odd pixel of padding goes after the image
    (JavaScript's ``Math.round`` of the half difference is appended, the rest prepended)."""
    height, width = image.shape[:2]
    diff = abs(height - width)
    if diff == 0:
        return image
    after, before = (diff + 1) // 2, diff // 2
    pads = [(before, after), (0, 0)] if height < width else [(0, 0), (before, after)]
    return np.pad(image, pads + [(0, 0)] * (image.ndim - 2))


def box_crop(
    image: np.ndarray,
    keypoints: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = 0.0,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """face-api's crop: the axis-aligned box, clipped to the image, zero-padded to a centred square.

    The box grows by ``margin`` of its width (height) on the left and right (top and bottom), is
    clipped to the image and floored to whole pixels (face-api's ``clipAtImageBorders``), padded
    with black by `pad_to_square` and resized to ``crop_size``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints: ``(K, 2)`` float image pixels.
        box: ``(x0, y0, x1, y1)`` face box in image pixels.
        margin: extra context on each side, as a fraction of the box side (>= 0).
        crop_size: side ``S`` of the output crop.
    Returns:
        ``(crop (S, S, 3) uint8, crop_keypoints (K, 2) float32, to_crop (2, 3) float32)``, as `crop_face`.
    """
    if margin < 0:
        raise InputError(f"margin must be >= 0, got {margin}")
    x0, y0, x1, y1 = box
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    left, top = max(x0 - grow_x, 0.0), max(y0 - grow_y, 0.0)
    width = min(x1 + grow_x - left, image.shape[1] - left)
    height = min(y1 + grow_y - top, image.shape[0] - top)
    left_px, top_px, width_px, height_px = (max(int(math.floor(v)), 0) for v in (left, top, width, height))
    if width_px == 0 or height_px == 0:
        raise InputError(f"face box {box} lies outside the {image.shape[1]}x{image.shape[0]} image")
    square = pad_to_square(image[top_px:top_px + height_px, left_px:left_px + width_px])
    side = square.shape[0]
    interp = cv2.INTER_AREA if side >= crop_size else cv2.INTER_LINEAR
    crop = square if side == crop_size else cv2.resize(square, (crop_size, crop_size), interpolation=interp)
    # The padded square's origin in image pixels, and cv2.resize's half-pixel centres.
    origin_x = left_px - (side - width_px) // 2
    origin_y = top_px - (side - height_px) // 2
    scale = crop_size / side
    shift = 0.5 * scale - 0.5
    to_crop = np.array([[scale, 0.0, shift - scale * origin_x], [0.0, scale, shift - scale * origin_y]], np.float32)
    crop_kp = (keypoints @ to_crop[:, :2].T + to_crop[:, 2]).astype(np.float32)
    return np.ascontiguousarray(crop), crop_kp, to_crop


def cut_crop(
    image: np.ndarray, keypoints: np.ndarray, box: tuple[float, float, float, float], style: CropStyle,
    crop_size: int = DEFAULT_CROP_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face crop in ``style``: `crop_face` or `box_crop` (same arguments and returns)."""
    cut = crop_face if style.kind == "aligned" else box_crop
    return cut(image, keypoints, box, style.margin, crop_size)
