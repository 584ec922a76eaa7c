"""The benchmark's frames: 640×480 pictures composed from the shipped assets (one face, and five faces
of decreasing size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer.assets import ASSETS_DIR
from fer.errors import InputError

#: The folder holding the `fer` package (a checkout, or site-packages): the cold-start subprocess imports it from there.
ROOT = Path(__file__).resolve().parents[2]
ASSETS = ASSETS_DIR  # package data in a wheel, assets/ in a checkout

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
    if not ASSETS.is_dir():
        raise InputError(f"the benchmark composes its frames from the shipped assets ({ASSETS} is missing): "
                         "reinstall the package or run it from a checkout")
    patch = _face_patch()
    frame = _background()
    for side, (x, y) in FRAMES[name][0]:
        frame[y:y + side, x:x + side] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    return frame
