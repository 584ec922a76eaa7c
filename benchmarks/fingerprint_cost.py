"""What a content fingerprint costs (`fer.research.datasets.Dataset.fingerprint`): a ``ROOT/<label>/*``
folder of N small PNG files (default 10,000, about the size of RaFD's 8,040 images), fingerprinted

- cold: no hash known (first run on a dataset: every file is read and hashed),
- warm, new process: hashes from the on-disk index (`fer.research.fingerprint`), one ``stat`` per file,
- warm, same process: from memory,
- after one file changed: the index is used and that one file re-hashed.

    .venv/bin/python benchmarks/fingerprint_cost.py --files 10000 --out benchmarks/results/fingerprint.json

The files are random-noise PNGs of ``--side`` px (noise does not compress, so the bytes hashed are
close to the raw pixels). The page cache is warm for every row (the files were just written); a
cold disk adds its read time to the cold row only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer.research import fingerprint as F  # noqa: E402
from fer.research.datasets import load_folder  # noqa: E402

LABELS = ("angry", "happy", "sad", "surprise")


def write_folder(root: Path, files: int, side: int) -> int:
    """``files`` noise PNGs in four class folders, named ``sNNN_K.png``; returns the bytes written."""
    rng = np.random.default_rng(0)
    total = 0
    for i in range(files):
        folder = root / LABELS[i % len(LABELS)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"s{i // 40:03d}_{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (side, side, 3), np.uint8))
        total += path.stat().st_size
    return total


def timed(root: Path) -> float:
    dataset = load_folder(root)
    start = time.perf_counter()
    dataset.fingerprint()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--side", type=int, default=128, help="PNG side in pixels (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fer-fingerprint-") as tmp:
        os.environ["FER_CACHE_DIR"] = str(Path(tmp) / "cache")
        data = Path(tmp) / "data"
        size = write_folder(data, args.files, args.side)
        start = time.perf_counter()
        load_folder(data)
        listing = time.perf_counter() - start
        cold = timed(data)
        warm_memory = timed(data)
        child = subprocess.run([sys.executable, __file__, "--_warm", str(data)], capture_output=True, text=True,
                               check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        warm_index = float(child.stdout.strip())
        changed = next(data.rglob("*.png"))
        changed.write_bytes(changed.read_bytes())  # same bytes, new mtime: re-hashed
        one_changed = timed(data)
    result = {
        "files": args.files, "megabytes": round(size / 1e6, 1), "side": args.side,
        "listing_s": round(listing, 3), "cold_s": round(cold, 3), "warm_index_new_process_s": round(warm_index, 3),
        "warm_memory_s": round(warm_memory, 3), "one_file_changed_s": round(one_changed, 3),
        "cold_mb_per_s": round(size / 1e6 / cold, 1), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--_warm":  # the new-process row: index on disk, memory empty
        F.forget()
        print(timed(Path(sys.argv[2])))
    else:
        main()
