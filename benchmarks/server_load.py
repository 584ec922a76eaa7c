"""The app server's memory and robustness under API load, on loopback only.

    .venv/bin/python benchmarks/server_load.py --start-app --out benchmarks/results/server_load.json
    .venv/bin/python benchmarks/server_load.py --url http://127.0.0.1:7860 --calls 2000

Two runs, reported as one JSON object:

1. **Memory over calls.** ``--clients`` `gradio_client` sessions call ``/predict`` with the shipped
   astronaut (uploading it each time, as a program would) until ``--calls`` calls are done, after
   ``--warmup`` calls; the server's resident memory (``VmRSS``, read from ``/proc``: the server must
   be a process of this machine) is sampled every ``--every`` calls. Reported: RSS after warm-up,
   at the end and its growth (the target is at most 10 %), calls/s, failures.
2. **Identical concurrent uploads.** ``--same-clients`` clients upload the same picture under the
   same name and analyse it, over and over, for ``--same-seconds`` seconds: every call must succeed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from stream_load import app_under_test, stop_app  # noqa: E402

ASTRONAUT = ROOT / "assets" / "astronaut.png"


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def server_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:``port`` (found through /proc)."""
    inodes: dict[str, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                target = str(fd.readlink()) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = int(fd_dir.parent.name)
        except OSError:
            continue
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port and cols[9] in inodes:
            return inodes[cols[9]]
    raise SystemExit(f"no process of this machine listens on port {port}")


def predict_loop(url: str, count: threading.Semaphore, failures: list[str], picture: Path,
                 deadline: float = float("inf")) -> int:
    """One client: call /predict with ``picture`` until ``count`` runs out or ``deadline``
    (`time.perf_counter`) passes; returns the calls made."""
    from gradio_client import Client, handle_file

    done = 0
    client = Client(url, verbose=False, download_files=False)
    try:
        while time.perf_counter() < deadline and count.acquire(blocking=False):
            try:
                label, data = client.predict(handle_file(str(picture)), api_name="/predict")
                if label.get("label") != "happy" or len(data["faces"]) != 1:
                    failures.append(str(data)[:200])
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            done += 1
    finally:
        client.close()
    return done


def _calls(url: str, total: int, clients: int, failures: list[str], pid: int | None = None
           ) -> tuple[int, float, list[tuple[int, float]]]:
    """``total`` /predict calls from ``clients`` clients; with ``pid``, RSS samples ``(calls made, MB)``
    every 0.5 s. Returns ``(calls, seconds, samples)``."""
    budget = threading.Semaphore(total)
    samples: list[tuple[int, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((total - budget._value, rss_mb(pid)))  # noqa: SLF001 - the calls still to make
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    if pid is not None:
        sampler.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(lambda _: predict_loop(url, budget, failures, ASTRONAUT), range(clients)))
    seconds = time.perf_counter() - start
    stop.set()
    if pid is not None:
        sampler.join()
    return done, seconds, samples


def memory_run(url: str, pid: int, calls: int, warmup: int, clients: int, every: int) -> dict[str, Any]:
    """Run 1: RSS over ``calls`` /predict calls after ``warmup`` calls."""
    failures: list[str] = []
    _calls(url, warmup, clients, failures)
    rss_start = rss_mb(pid)
    done, seconds, samples = _calls(url, calls, clients, failures, pid)
    rss_end = rss_mb(pid)
    by_calls: dict[int, float] = {}
    for made, mb in samples:
        by_calls.setdefault(made // every * every, mb)
    return {
        "calls": done, "clients": clients, "warmup_calls": warmup, "seconds": round(seconds, 1),
        "calls_per_s": round(done / seconds, 1), "failures": len(failures), "failure_examples": failures[:3],
        "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(max(mb for _, mb in samples), 1) if samples else None,
        "rss_growth": round((rss_end - rss_start) / rss_start, 4),
        "rss_mb_by_calls": {str(k): round(v, 1) for k, v in sorted(by_calls.items())},
    }


def identical_run(url: str, clients: int, seconds: float, folder: Path) -> dict[str, Any]:
    """Run 2: the same picture, same name, from ``clients`` clients for ``seconds``."""
    picture = folder / "same.png"
    picture.write_bytes(ASTRONAUT.read_bytes())
    failures: list[str] = []
    deadline = time.perf_counter() + seconds
    budget = threading.Semaphore(10**9)
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(lambda _: predict_loop(url, budget, failures, picture, deadline), range(clients)))
    return {"clients": clients, "seconds": seconds, "calls": done, "failures": len(failures),
            "failure_examples": failures[:3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="the running app, loopback only (default: start one)")
    parser.add_argument("--start-app", action="store_true", help="start app.py on a free port and stop it after")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=int, default=250, help="report RSS every so many calls")
    parser.add_argument("--same-clients", type=int, default=20)
    parser.add_argument("--same-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    url, proc = app_under_test(args.url)
    try:
        pid = proc.pid if proc is not None else server_pid(int(url.rsplit(":", 1)[1]))
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            report = {
                "memory": memory_run(url, pid, args.calls, args.warmup, args.clients, args.every),
                "identical_uploads": identical_run(url, args.same_clients, args.same_seconds, Path(folder)),
            }
    finally:
        if proc is not None:
            stop_app(proc)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    ok = report["memory"]["failures"] == 0 and report["identical_uploads"]["failures"] == 0
    return 0 if ok and report["memory"]["rss_growth"] <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
