"""Run face-api's own JavaScript on fixed inputs → ``tests/fixtures/face_api_parity.npz``.

The inputs are made deterministically from the shipped assets and synthetic patterns: the
astronaut's face cut as face-api cuts it (`fer.crops.box_crop`, no margin) and as we cut it
(`fer.crops.crop_face`), two uncropped rectangles of it (one taller, one wider than 112 px, so
face-api's centred zero padding is exercised on both axes), a 150x150 square (face-api resizes it
with TF.js's bilinear resize), a colour gradient and uniform noise. `scripts/face_api_reference.mjs` runs them through the package's ``dist/face-api.esm.js`` on
TF.js's 'cpu' backend (needs ``node`` >= 18 and ``npm``, nothing else), and the outputs are stored
beside the inputs.

Usage:
    python scripts/face_api_reference.py                     # npm pack @vladmandic/face-api@1.7.15
    python scripts/face_api_reference.py --tarball vladmandic-face-api-1.7.15.tgz
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from convert_face_api import FACE_API_LABELS, fetch_tarball  # noqa: E402

from fer.crops import box_crop, crop_face  # noqa: E402
from fer.face import FaceDetector  # noqa: E402
from fer.io import read_image  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "face_api_parity.npz"
SCRIPT = ROOT / "scripts" / "face_api_reference.mjs"


def make_inputs() -> dict[str, np.ndarray]:
    """Name → ``(H, W, 3)`` uint8 RGB input, in a fixed order."""
    astronaut = read_image(ROOT / "assets" / "astronaut.png")
    with FaceDetector("short", max_faces=1) as detector:
        (face,) = detector(astronaut)
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    # Noise in 4x4 blocks: as far from a face as the gradient, and it keeps the fixture small.
    blocks = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, 112)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[::-1][None, :]), axis=-1)
    return {
        "astronaut face, box crop": box_crop(astronaut, face.keypoints, face.box, 0.0, 112)[0],
        "astronaut face, aligned crop": crop_face(astronaut, face.keypoints, face.box, 0.2, 112)[0],
        "astronaut, 112 high x 97 wide": astronaut[cy - 56:cy + 56, cx - 48:cx + 49],
        "astronaut, 101 high x 112 wide": astronaut[cy - 50:cy + 51, cx - 56:cx + 56],
        "astronaut, 150 x 150": astronaut[cy - 75:cy + 75, cx - 75:cx + 75],
        "colour gradient": gradient.round().astype(np.uint8),
        "uniform noise": cv2.resize(blocks, (112, 112), interpolation=cv2.INTER_NEAREST),
    }


def run_reference(package_dir: Path, inputs: dict[str, np.ndarray], work: Path) -> dict:
    """Run `SCRIPT` on ``inputs``; returns its JSON output."""
    request = {"inputs": [{"name": name, "height": img.shape[0], "width": img.shape[1],
                           "rgb": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode()}
                          for name, img in inputs.items()]}
    (work / "inputs.json").write_text(json.dumps(request))
    subprocess.run(["node", str(SCRIPT), str(package_dir), str(work / "inputs.json"), str(work / "outputs.json")],
                   check=True, capture_output=True)
    return json.loads((work / "outputs.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="face-api's JavaScript outputs on fixed inputs, as a test fixture.")
    parser.add_argument("--tarball", type=Path, help="the `npm pack` tarball (default: fetch it)")
    parser.add_argument("--out", type=Path, default=FIXTURE, help=f"fixture to write (default: {FIXTURE.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    inputs = make_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarball = args.tarball or fetch_tarball(work)
        with tarfile.open(tarball, "r:gz") as tar:
            tar.extractall(work, filter="data")
        out = run_reference(work / "package", inputs, work)
    if tuple(out["labels"]) != FACE_API_LABELS or [r["name"] for r in out["results"]] != list(inputs):
        raise SystemExit("the reference answered for other labels or inputs")
    arrays = {f"input_{i}": img for i, img in enumerate(inputs.values())}
    np.savez_compressed(
        args.out, **arrays, names=np.array(list(inputs)), labels=np.array(FACE_API_LABELS),
        logits=np.array([r["logits"] for r in out["results"]], np.float64),
        probs=np.array([r["probabilities"] for r in out["results"]], np.float64),
        versions=np.array([f"@vladmandic/face-api {out['face_api']}", f"tfjs {out['tfjs']}", f"backend {out['backend']}"]),
    )
    print(f"{len(inputs)} inputs, face-api {out['face_api']} on tfjs {out['tfjs']} ({out['backend']}) → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
