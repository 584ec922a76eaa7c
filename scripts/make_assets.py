"""Make the derived example files in ``assets/`` from the shipped public-domain astronaut portrait.

    python scripts/make_assets.py        # needs ffmpeg with libx264 (browsers play H.264)

- ``astronaut-collage.jpg``: five copies of the portrait's head (two mirrored, three sizes), an
  example with several faces;
- ``astronaut-clip.mp4``: a 4 s clip (25 frames/s, 320×320, H.264, no sound) slowly zooming into
  the portrait and back out; the Video tab's example. The face moves smoothly (no jump, no mirror),
  so the tracker keeps it as one face from start to end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "assets"
FPS, SECONDS, SIDE = 25, 4, 320


def collage(face: np.ndarray) -> np.ndarray:
    """``(512, 768, 3)`` uint8 RGB: five copies of the portrait's head (two mirrored, three sizes)
    on grey, large enough for the short-range detector."""
    x0, y0, x1, y1 = 177, 82, 272, 177  # the face box the detector finds on the portrait
    cx, cy, half = (x0 + x1) // 2, (y0 + y1) // 2, 100
    head = face[cy - half:cy + half, cx - half:cx + half]
    canvas = np.full((512, 768, 3), 200, np.uint8)
    for (top, left, side, mirrored) in ((0, 0, 256, False), (0, 256, 256, True), (28, 540, 200, False),
                                        (276, 40, 220, True), (256, 300, 256, False)):
        tile = cv2.resize(head[:, ::-1] if mirrored else head, (side, side), interpolation=cv2.INTER_AREA)
        canvas[top:top + side, left:left + side] = tile
    return canvas


def clip_frames(face: np.ndarray) -> list[np.ndarray]:
    """``FPS * SECONDS`` frames ``(SIDE, SIDE, 3)`` uint8 RGB zooming from the whole portrait to
    the middle 70 % and back out (a triangle wave: the face box changes by a few pixels a frame)."""
    height, width = face.shape[:2]
    frames = []
    count = FPS * SECONDS
    for i in range(count):
        scale = 1.0 - 0.3 * (1.0 - abs(2.0 * i / (count - 1) - 1.0))
        w, h = int(width * scale), int(height * scale)
        x0, y0 = (width - w) // 2, (height - h) // 3
        frames.append(cv2.resize(face[y0:y0 + h, x0:x0 + w], (SIDE, SIDE), interpolation=cv2.INTER_AREA))
    return frames


def write_h264(frames: list[np.ndarray], out: Path) -> None:
    """Encode RGB frames as an H.264 MP4 with ffmpeg (frames go through a temporary folder)."""
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed: apt-get install ffmpeg")
    with tempfile.TemporaryDirectory() as tmp:
        for i, frame in enumerate(frames):
            cv2.imwrite(str(Path(tmp) / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", str(FPS), "-i", str(Path(tmp) / "%04d.png"),
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "28", "-movflags", "+faststart",
                        "-an", str(out)], check=True)


def main() -> None:
    face = cv2.cvtColor(cv2.imread(str(ASSETS / "astronaut.png")), cv2.COLOR_BGR2RGB)
    cv2.imwrite(str(ASSETS / "astronaut-collage.jpg"), cv2.cvtColor(collage(face), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    write_h264(clip_frames(face), ASSETS / "astronaut-clip.mp4")
    for name in ("astronaut-collage.jpg", "astronaut-clip.mp4"):
        print(f"{name}: {(ASSETS / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
