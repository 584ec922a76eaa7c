"""Side by side with the best-known lightweight peer, the ``fer`` PyPI package (25.10.3), in one run.

    .venv/bin/python benchmarks/peer_fer.py                 # writes benchmarks/results/latest.json + stages.png
    .venv/bin/python benchmarks/peer_fer.py --setup-only    # only create the peer's venv

The peer needs TensorFlow 2.21 (and facenet-pytorch for its MTCNN detector), so it lives in its own
virtual environment, created here on first use under ``~/.cache/fer-bench/peer-venv`` (about 8 GB
downloaded from PyPI). Its import name is also ``fer``: it runs in a separate process started with
that venv's python in isolated mode (``-I``), from a temporary folder, so our package is never on
its ``sys.path``. That process stays up and times single calls on request, which lets the two sides
take turns frame by frame: whatever else the machine does falls on both alike.

What is compared, on the same 640×480 frames (`fer.bench.compose_frame`), decoded once beforehand:
- the peer's ``FER().detect_emotions(bgr)`` (default: OpenCV Haar cascade + its quantised TFLite
  mini-Xception) and ``FER(mtcnn=True)``;
- our ``Pipeline.__call__(rgb)`` (BlazeFace on LiteRT + the same mini-Xception weights, ported to
  PyTorch and run by OpenCV DNN),
  the same job: find faces, classify each; and the same call with each of our other registered
  models (face-api's expression network, the ensemble of both), so their cost and how far they
  differ from the peer's mini-Xception are measured in the same run.
Top-1 agreement is counted on faces both sides found (boxes matched by overlap) over the two frames
and a few variants of the one-face frame (mirrored, rotated, darker, brighter, smaller, blurred).
All faces are the same smiling person, so agreement mostly tests ``happy``; the mean absolute
difference of the seven probabilities says more.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer.bench import FRAMES, compose_frame, plot_stages, run_benchmark, summarise  # noqa: E402
from fer.tracking import box_iou  # noqa: E402

#: The peer and what it needs, pinned (the versions this comparison was made with).
PEER_VERSION = "25.10.3"
PEER_REQUIREMENTS = ("fer==25.10.3", "tensorflow==2.21.0", "facenet-pytorch==2.6.0", "setuptools<81")
DEFAULT_VENV = Path.home() / ".cache" / "fer-bench" / "peer-venv"
RESULTS = ROOT / "benchmarks" / "results"

#: The peer's labels in its output order; the same names as ours.
PEER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Runs inside the peer's venv. Protocol: one JSON object per line on stdin; each answer is one line
# on stdout starting with "@@" (TensorFlow may print other lines). Timing happens here, so the
# pipe between the processes is never timed.
_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
MTCNN = sys.argv[2] == "mtcnn"
if MTCNN:
    import facenet_pytorch  # before TensorFlow, or the process segfaults
from fer.fer import FER
import cv2
t1 = time.perf_counter()
detector = FER(mtcnn=MTCNN)
t2 = time.perf_counter()
frames = json.loads(open(sys.argv[1]).read())
images = {name: cv2.imread(path) for name, path in frames.items()}
def answer(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n"); sys.stdout.flush()
answer({"ready": True, "import_s": t1 - t0, "load_s": t2 - t1})
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["cmd"] == "quit":
        break
    image = images[cmd["frame"]]
    if cmd["cmd"] == "time":
        ms = []
        for _ in range(cmd["n"]):
            start = time.perf_counter_ns()
            detector.detect_emotions(image)
            ms.append((time.perf_counter_ns() - start) / 1e6)
        answer({"ms": ms})
    elif cmd["cmd"] == "detect":
        faces = detector.detect_emotions(image)
        answer({"faces": [{"box": [int(v) for v in f["box"]], "emotions": f["emotions"]} for f in faces]})
"""


# --------------------------------------------------------------------------- the peer's venv


def peer_python(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def peer_installed(venv: Path) -> bool:
    """True when the venv exists and holds the pinned peer version."""
    python = peer_python(venv)
    if not python.is_file():
        return False
    probe = subprocess.run([str(python), "-I", "-c", "import importlib.metadata as m; print(m.version('fer'))"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    return probe.returncode == 0 and probe.stdout.strip() == PEER_VERSION


def ensure_peer_venv(venv: Path) -> Path:
    """Create the peer's venv and install `PEER_REQUIREMENTS` unless already there; returns its python.

    pip's output goes to ``install.log`` beside the venv (several GB are downloaded the first time).
    """
    if peer_installed(venv):
        return peer_python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "install.log"
    print(f"creating the peer's venv in {venv} (pip log: {log}); this downloads several GB once", file=sys.stderr)
    # The venv is built from the base interpreter (also when this script runs inside our own venv).
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    with open(log, "a") as out:
        subprocess.run([str(peer_python(venv)), "-m", "pip", "install", "--progress-bar", "off", *PEER_REQUIREMENTS],
                       stdout=out, stderr=subprocess.STDOUT, check=True, cwd=tempfile.gettempdir())
    if not peer_installed(venv):
        raise SystemExit(f"the peer did not install into {venv}; see {log}")
    return peer_python(venv)


class PeerWorker:
    """The peer running in its own process (see `_WORKER`), one detector configuration each."""

    def __init__(self, python: Path, frames_json: Path, config: str, workdir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")  # no GPU probing noise
        start = time.perf_counter()
        self.proc = subprocess.Popen([str(python), "-I", "-c", _WORKER, str(frames_json), config], cwd=workdir,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.config = config
        ready = self._read()
        self.startup = {"import_s": round(ready["import_s"], 3), "load_s": round(ready["load_s"], 3),
                        "process_ready_s": round(time.perf_counter() - start, 3)}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"the peer's {self.config} process ended early (exit {self.proc.wait()})")

    def ask(self, **cmd: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the process to quit; stop it if it does not."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- frames


def variant_frames() -> dict[str, np.ndarray]:
    """The two benchmark frames plus variants of the one-face frame, ``(480, 640, 3)`` uint8 RGB each."""
    import cv2

    one = compose_frame("1 face")
    centre = (one.shape[1] / 2, one.shape[0] / 2)
    frames = {name: compose_frame(name) for name in FRAMES}

    def rotate(degrees: float) -> np.ndarray:
        matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
        return cv2.warpAffine(one, matrix, one.shape[1::-1], borderMode=cv2.BORDER_REFLECT)

    def zoom(scale: float) -> np.ndarray:
        matrix = cv2.getRotationMatrix2D(centre, 0.0, scale)
        return cv2.warpAffine(one, matrix, one.shape[1::-1], borderMode=cv2.BORDER_REFLECT)

    frames.update({
        "mirrored": np.ascontiguousarray(one[:, ::-1]),
        "rotated +12°": rotate(12.0),
        "rotated -12°": rotate(-12.0),
        "darker (×0.6)": (one * 0.6).astype(np.uint8),
        "brighter (×1.3)": np.clip(one * 1.3, 0, 255).astype(np.uint8),
        "smaller (×0.7)": zoom(0.7),
        "larger (×1.3)": zoom(1.3),
        "blurred": cv2.GaussianBlur(one, (0, 0), 2.0),
    })
    return frames


# --------------------------------------------------------------------------- comparison


def compare_latency(models: dict[str, dict[str, Any]], frames: dict[str, np.ndarray], peers: dict[str, PeerWorker],
                    iterations: int) -> dict[str, Any]:
    """Per-frame latency of both sides on the benchmark frames, taking turns call by call.

    Args:
        models: our model name → detector → pipeline; the first model is "ours", the rest are
            reported under ``ours_models`` (every model, the first included).
    """
    out: dict[str, Any] = {}
    for name in FRAMES:
        pipes = {model: by_detector[FRAMES[name][1]] for model, by_detector in models.items()}
        frame = frames[name]
        for _ in range(3):  # warm-up, both sides
            for pipe in pipes.values():
                pipe(frame)
            for peer in peers.values():
                peer.ask(cmd="time", frame=name, n=1)
        ours: dict[str, list[float]] = {m: [] for m in pipes}
        theirs: dict[str, list[float]] = {c: [] for c in peers}
        for _ in range(iterations):
            for model, pipe in pipes.items():
                start = time.perf_counter_ns()
                pipe(frame)
                ours[model].append((time.perf_counter_ns() - start) / 1e6)
            for config, peer in peers.items():
                theirs[config] += peer.ask(cmd="time", frame=name, n=1)["ms"]
        first = next(iter(ours))
        out[name] = {"ours": {"detector": FRAMES[name][1], **summarise(ours[first])},
                     "ours_models": {m: summarise(v) for m, v in ours.items()},
                     **{f"peer_{c}": summarise(v) for c, v in theirs.items()}}
    return out


def _peer_box(box: list[int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x, y, x + w, y + h


def compare_predictions(pipes: dict[str, Any], frames: dict[str, np.ndarray], peer: PeerWorker,
                        min_iou: float = 0.3) -> dict[str, Any]:
    """Top-1 agreement and probability difference on faces found by both sides."""
    rows = []
    found = {"ours": 0, "peer": 0}
    for name, frame in frames.items():
        detector = FRAMES[name][1] if name in FRAMES else "short"
        ours = pipes[detector](frame)
        theirs = peer.ask(cmd="detect", frame=name)["faces"]
        found["ours"] += len(ours)
        found["peer"] += len(theirs)
        used: set[int] = set()
        for pred in ours:
            best, best_iou = None, min_iou
            for j, face in enumerate(theirs):
                iou = box_iou(pred.box, _peer_box(face["box"]))
                if j not in used and iou >= best_iou:
                    best, best_iou = j, iou
            if best is None:
                continue
            used.add(best)
            peer_probs = np.array([theirs[best]["emotions"][k] for k in PEER_LABELS], np.float64)
            ours_probs = np.array([pred.probabilities[pred.labels.index(k)] for k in PEER_LABELS], np.float64)
            rows.append({
                "frame": name, "iou": round(best_iou, 3), "ours": pred.label,
                "peer": PEER_LABELS[int(peer_probs.argmax())],
                "ours_p": round(float(ours_probs.max()), 3), "peer_p": round(float(peer_probs.max()), 3),
                "mean_abs_diff": round(float(np.abs(ours_probs - peer_probs).mean()), 4),
            })
    agree = [r["ours"] == r["peer"] for r in rows]
    return {
        "faces_compared": len(rows),
        "faces_found": found,
        "top1_agreement": round(float(np.mean(agree)), 3) if rows else None,
        "mean_abs_prob_diff": round(float(np.mean([r["mean_abs_diff"] for r in rows])), 4) if rows else None,
        "labels_seen": sorted({r["ours"] for r in rows} | {r["peer"] for r in rows}),
        "faces": rows,
        "note": "every face is the astronaut (one smiling person) or a variant of it; the peer rounds "
                "its probabilities to 2 decimals",
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return None
    return out.stdout.strip() or None


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the peer's venv (default: %(default)s)")
    parser.add_argument("--setup-only", action="store_true", help="create the peer's venv and stop")
    parser.add_argument("--iterations", type=int, default=60, help="timed calls per side and frame (default: %(default)s)")
    parser.add_argument("--bench-iterations", type=int, default=100,
                        help="rounds of our per-stage benchmark (default: %(default)s)")
    parser.add_argument("--no-mtcnn", action="store_true", help="skip the peer's MTCNN configuration")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for our side, as fer bench and the app (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json",
                        help="result JSON; the same report as markdown goes beside it (default: %(default)s)")
    parser.add_argument("--plot", type=Path, default=RESULTS / "stages.png", help="stage chart (default: %(default)s)")
    args = parser.parse_args(argv)

    python = ensure_peer_venv(args.venv.expanduser())
    if args.setup_only:
        print(python)
        return 0

    import torch

    import fer

    # The entry point's choice (fer.load leaves torch's threads alone); 1 is what every run used.
    torch.set_num_threads(max(1, args.threads))
    print("… our per-stage benchmark", file=sys.stderr)
    doc = run_benchmark(iterations=args.bench_iterations, warmup=10, cold_runs=3,
                        progress=lambda line: print(f"… {line}", file=sys.stderr))
    frames = variant_frames()
    configs = ["haar"] + ([] if args.no_mtcnn else ["mtcnn"])
    with tempfile.TemporaryDirectory(prefix="fer-peer-") as tmp:
        import cv2

        paths = {}
        for i, (name, frame) in enumerate(frames.items()):
            paths[name] = str(Path(tmp) / f"frame{i}.png")
            cv2.imwrite(paths[name], cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))  # lossless, the peer reads BGR
        frames_json = Path(tmp) / "frames.json"
        frames_json.write_text(json.dumps(paths))
        print(f"… starting the peer ({', '.join(configs)})", file=sys.stderr)
        peers = {c: PeerWorker(python, frames_json, c, Path(tmp)) for c in configs}
        from fer.models import ALIASES, ENSEMBLES, PRETRAINED

        # The default model first ("ours"), then every other registered network and ensemble.
        names = ["default", *(m for m in [*PRETRAINED, *ENSEMBLES] if m != ALIASES["default"])]
        models = {m: {det: fer.load(m, detector=det) for det in ("short", "full")}  # type: ignore[arg-type]
                  for m in names}
        try:
            print("… latency, taking turns", file=sys.stderr)
            latency = compare_latency(models, frames, peers, args.iterations)
            print("… agreement", file=sys.stderr)
            agreement = {c: compare_predictions(models["default"], frames, p) for c, p in peers.items()}
            model_agreement = {m: compare_predictions(by_det, frames, peers["haar"]) for m, by_det in models.items()}
        finally:
            for p in peers.values():
                p.close()
            for by_det in models.values():
                for pipe in by_det.values():
                    pipe.close()
    one = latency["1 face"]
    ours_ms, peer_ms = one["ours"]["ms_p50"], one["peer_haar"]["ms_p50"]
    doc["peer"] = {
        "package": f"fer=={PEER_VERSION} (PyPI), its defaults: OpenCV Haar cascade + quantised TFLite mini-Xception",
        "requirements": list(PEER_REQUIREMENTS),
        "python": platform.python_version(),
        "startup": {c: p.startup for c, p in peers.items()},
        "latency": latency,
        "agreement": agreement,
        "model_agreement": model_agreement,
        "ours": "fer.load() (BlazeFace short range, full range on the 5-face frame) Pipeline.__call__(rgb): "
                "detect + crop + classify, no Grad-CAM; frames decoded beforehand on both sides",
    }
    doc.update({
        "peer_ms_p50": peer_ms,
        "peer_mtcnn_ms_p50": one.get("peer_mtcnn", {}).get("ms_p50"),
        "ours_vs_peer_ms_p50": ours_ms,
        "peer_ratio": round(peer_ms / ours_ms, 1) if ours_ms else None,
        "peer_agreement": agreement["haar"]["top1_agreement"],
        "git_commit": _git_commit(),
    })
    doc["targets"]["peer_ratio"] = {"target": ">= 10", "value": doc["peer_ratio"],
                                    "met": doc["peer_ratio"] is not None and doc["peer_ratio"] >= 10}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    peer_bar = {"label": f"fer {PEER_VERSION} detect_emotions (Haar)",
                "ms_p50": {f: latency[f]["peer_haar"]["ms_p50"] for f in FRAMES}}
    plot_stages(doc, args.plot, peer=peer_bar)
    text = report(doc)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')} and {args.plot}", file=sys.stderr)
    return 0


def report(doc: dict[str, Any]) -> str:
    """The side-by-side table as markdown."""
    from fer.bench import format_report

    peer = doc["peer"]
    lines = [format_report(doc), "", "| frame | ours p50 (ms) | peer Haar p50 (ms) | peer MTCNN p50 (ms) | ratio (Haar) |",
             "|---|---:|---:|---:|---:|"]
    for name, row in peer["latency"].items():
        mt = row.get("peer_mtcnn", {}).get("ms_p50")
        ratio = row["peer_haar"]["ms_p50"] / row["ours"]["ms_p50"]
        lines.append(f"| {name} ({row['ours']['detector']} range) | {row['ours']['ms_p50']:.2f} | "
                     f"{row['peer_haar']['ms_p50']:.2f} | {'–' if mt is None else f'{mt:.2f}'} | {ratio:.1f}× |")
    for config, agree in peer["agreement"].items():
        lines.append(f"top-1 agreement with the peer ({config}): {agree['top1_agreement']} on "
                     f"{agree['faces_compared']} faces found by both (ours found {agree['faces_found']['ours']}, "
                     f"peer {agree['faces_found']['peer']}); mean |Δp| {agree['mean_abs_prob_diff']}; "
                     f"labels seen: {', '.join(agree['labels_seen'])}")
    for name, row in peer["latency"].items():
        lines.append(f"{name}, each of our models (detect → classify p50): " + ", ".join(
            f"{m} {v['ms_p50']:.2f} ms" for m, v in row.get("ours_models", {}).items()))
    for model, agree in peer.get("model_agreement", {}).items():
        lines.append(f"top-1 agreement of {model} with the peer (Haar): {agree['top1_agreement']} on "
                     f"{agree['faces_compared']} faces; mean |Δp| {agree['mean_abs_prob_diff']}")
    for config, s in peer["startup"].items():
        lines.append(f"peer cold start ({config}): import {s['import_s']:.2f} s + load {s['load_s']:.2f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
