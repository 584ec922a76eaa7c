"""A synthetic expression dataset drawn in the test, in RaFD, folder and FER2013 layouts.

Cartoon faces: an ellipse head, eyes with pupils, eyebrows and a mouth. The expression lives where
it does in real faces, in the mouth and brows:

- happy: smile arc, relaxed brows
- sad: frown arc, brows raised at their inner ends
- surprise: open round mouth, brows raised high
- angry: pressed straight mouth, brows lowered at their inner ends (a "V")

Each subject has its own geometry (head shape, skin and background tone, eye spacing and size,
brow thickness, mouth width); each image adds jitter in scale and position, a gaze shift of the
pupils, brightness and pixel noise. Faces are drawn where `fer.research.face_cache.ASSUMED_CROP_KEYPOINTS`
expects them (eyes at 1/3 of the height), so the images are valid "already cropped" faces.
No face detector finds these drawings: load them with ``assume_cropped=True``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: The classes drawn, with the spelling each layout uses for them.
LABELS: tuple[str, ...] = ("angry", "happy", "sad", "surprise")
RAFD_NAMES = {"angry": "angry", "happy": "happy", "sad": "sad", "surprise": "surprised"}
FOLDER_NAMES = {"angry": "anger", "happy": "happiness", "sad": "sadness", "surprise": "Surprised"}
FER2013_IDS = {"angry": 0, "happy": 3, "sad": 4, "surprise": 5}


@dataclass(frozen=True)
class Subject:
    """One synthetic person: the geometry shared by all their images (fractions of the image side)."""

    number: int
    head_w: float
    head_h: float
    skin: tuple[int, int, int]
    background: tuple[int, int, int]
    eye_dx: float
    eye_r: float
    brow_w: float
    brow_t: float
    mouth_w: float


def make_subjects(n: int, seed: int = 0) -> list[Subject]:
    """``n`` subjects with random geometry, numbered 1..n."""
    rng = np.random.default_rng(seed)
    subjects = []
    for number in range(1, n + 1):
        skin = tuple(int(v) for v in rng.integers(120, 235) * np.array([1.0, 0.85, 0.72]) + rng.integers(-10, 10, 3))
        subjects.append(Subject(
            number=number,
            head_w=float(rng.uniform(0.32, 0.40)),
            head_h=float(rng.uniform(0.42, 0.48)),
            skin=tuple(int(np.clip(v, 0, 255)) for v in skin),
            background=tuple(int(v) for v in rng.integers(20, 90, 3)),
            eye_dx=float(rng.uniform(0.14, 0.19)),
            eye_r=float(rng.uniform(0.035, 0.055)),
            brow_w=float(rng.uniform(0.08, 0.12)),
            brow_t=float(rng.uniform(0.025, 0.04)),
            mouth_w=float(rng.uniform(0.10, 0.15)),
        ))
    return subjects


def draw_face(subject: Subject, label: str, rng: np.random.Generator, size: int = 64, gaze: str = "frontal") -> np.ndarray:
    """Draw one face.

    Args:
        subject: whose face.
        label: one of `LABELS`.
        rng: source of the per-image jitter.
        size: side of the square image.
        gaze: "frontal", "left" or "right" (moves the pupils).
    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    if label not in LABELS:
        raise ValueError(f"unknown synthetic label {label!r}")
    big = size * 4  # draw at 4x and shrink: anti-aliased strokes
    s = subject
    scale = rng.uniform(0.92, 1.08)
    cx = big * (0.5 + rng.uniform(-0.04, 0.04))
    cy = big * (0.47 + rng.uniform(-0.04, 0.04))

    def pt(x: float, y: float) -> tuple[int, int]:  # face-relative fractions → canvas pixels
        return int(round(cx + x * big * scale)), int(round(cy + y * big * scale))

    def length(v: float) -> int:
        return max(1, int(round(v * big * scale)))

    img = np.empty((big, big, 3), np.uint8)
    img[:] = s.background
    dark = (25, 20, 20)
    cv2.ellipse(img, pt(0, 0), (length(s.head_w), length(s.head_h)), 0, 0, 360, s.skin, -1)
    eye_y = 0.33 - 0.47
    shift = {"frontal": 0.0, "left": -0.5, "right": 0.5}[gaze]
    for side in (-1, 1):
        centre = pt(side * s.eye_dx, eye_y)
        cv2.circle(img, centre, length(s.eye_r), (245, 245, 245), -1)
        cv2.circle(img, pt(side * s.eye_dx + shift * s.eye_r, eye_y), length(s.eye_r * 0.5), dark, -1)
        # Brows: inner end (towards the nose) and outer end heights, per expression.
        base = eye_y - s.eye_r - 0.04
        inner, outer = {
            "happy": (0.0, 0.0), "sad": (-0.035, 0.01), "surprise": (-0.045, -0.04), "angry": (0.03, -0.015),
        }[label]
        inner_x = side * (s.eye_dx - s.brow_w / 2)
        outer_x = side * (s.eye_dx + s.brow_w / 2)
        cv2.line(img, pt(inner_x, base + inner), pt(outer_x, base + outer), dark, length(s.brow_t), cv2.LINE_AA)
    mouth_y = 0.65 - 0.47
    w = s.mouth_w * rng.uniform(0.9, 1.1)
    thick = length(0.03)
    if label == "happy":
        cv2.ellipse(img, pt(0, mouth_y - 0.03), (length(w), length(0.07)), 0, 10, 170, dark, thick, cv2.LINE_AA)
    elif label == "sad":
        cv2.ellipse(img, pt(0, mouth_y + 0.05), (length(w), length(0.06)), 0, 190, 350, dark, thick, cv2.LINE_AA)
    elif label == "surprise":
        cv2.ellipse(img, pt(0, mouth_y), (length(w * 0.55), length(0.075)), 0, 0, 360, dark, -1, cv2.LINE_AA)
    else:
        cv2.line(img, pt(-w * 0.8, mouth_y), pt(w * 0.8, mouth_y), dark, thick, cv2.LINE_AA)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = img * rng.uniform(0.85, 1.15) + rng.normal(0.0, 6.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def write_rafd(root: str | Path, n_subjects: int = 10, seed: int = 0, size: int = 64,
               gazes: tuple[str, ...] = ("frontal", "left", "right"), angles: tuple[int, ...] = (90,)) -> list[Path]:
    """Save faces under RaFD's file names (``Rafd090_01_Caucasian_female_happy_frontal.png``).

    One image per subject × expression × gaze × camera angle (angle only changes the file name).
    """
    rng = np.random.default_rng(seed + 1000)
    paths = []
    for s in make_subjects(n_subjects, seed):
        gender = "female" if s.number % 2 else "male"
        for label in LABELS:
            for gaze in gazes:
                for angle in angles:
                    name = f"Rafd{angle:03d}_{s.number:02d}_Caucasian_{gender}_{RAFD_NAMES[label]}_{gaze}.png"
                    paths.append(_save(Path(root) / name, draw_face(s, label, rng, size, gaze)))
    return paths


def write_folder(root: str | Path, n_subjects: int = 10, per_label: int = 3, seed: int = 0, size: int = 64) -> list[Path]:
    """Save faces as ``ROOT/<label synonym>/s<subject>_<i>.png`` (folders ``anger``, ``happiness``, …)."""
    rng = np.random.default_rng(seed + 2000)
    paths = []
    for s in make_subjects(n_subjects, seed):
        for label in LABELS:
            for i in range(per_label):
                path = Path(root) / FOLDER_NAMES[label] / f"s{s.number:02d}_{i}.png"
                paths.append(_save(path, draw_face(s, label, rng, size)))
    return paths


def write_fer2013_csv(path: str | Path, n_subjects: int = 10, per_label: int = 3, seed: int = 0) -> Path:
    """Save 48x48 grey faces as a FER2013 ``emotion,pixels,Usage`` CSV.

    Subjects 1..n-2 are Training, n-1 PublicTest, n PrivateTest. One extra malformed row (a pixel
    string of the wrong length) tests that bad rows are skipped.
    """
    rng = np.random.default_rng(seed + 3000)
    subjects = make_subjects(n_subjects, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for s in subjects:
            usage = {n_subjects - 1: "PublicTest", n_subjects: "PrivateTest"}.get(s.number, "Training")
            for label in LABELS:
                for _ in range(per_label):
                    grey = cv2.cvtColor(draw_face(s, label, rng, 48), cv2.COLOR_RGB2GRAY)
                    writer.writerow([FER2013_IDS[label], " ".join(map(str, grey.ravel())), usage])
        writer.writerow([3, "1 2 3", "Training"])
    return path
