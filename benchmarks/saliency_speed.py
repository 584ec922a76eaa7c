"""Milliseconds per 224×224 face of each weightless saliency predictor (the design's budgets: 1 ms
face-prior, 2 ms spectral-residual on one CPU thread). A timing, so it lives here, not in the tests.

    python benchmarks/saliency_speed.py [--faces 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fer.saliency import load_saliency

BUDGET_MS = {"face-prior": 1.0, "spectral-residual": 2.0}
#: Frontal keypoints in a 224 crop (right eye, left eye, nose tip, mouth centre, right ear, left ear).
FRONTAL = np.array([[70, 74], [145, 74], [105, 109], [107, 145], [32, 96], [191, 95]], np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    crops = np.random.default_rng(0).integers(0, 256, (args.faces, 224, 224, 3), dtype=np.uint8)
    keypoints = np.repeat(FRONTAL[None], args.faces, axis=0)
    for name, budget in BUDGET_MS.items():
        predictor = load_saliency(name)
        predictor(crops, keypoints)  # warm-up
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            predictor(crops, keypoints)
            best = min(best, time.perf_counter() - start)
        print(f"{name:18s} {1000 * best / args.faces:6.3f} ms/face (budget {budget} ms)")


if __name__ == "__main__":
    main()
