"""Round trip through the running app's live webcam stream, as a browser drives it, on loopback only.

    .venv/bin/python benchmarks/stream_load.py --start-app                # starts app.py on a free port, stops it after
    .venv/bin/python benchmarks/stream_load.py --url http://127.0.0.1:7860 --sessions 1 8

Each simulated session does what Gradio's webcam component does in the browser: it joins the
queue of the webcam's stream event with a JPEG data URL of a 640×480 frame (`fer.bench.compose_frame`,
quality 0.92 like ``canvas.toDataURL("image/jpeg")``), reads the results from the server-sent
event stream, and sends every next frame to ``/gradio_api/stream/{event_id}``. By default the next
frame leaves as soon as the previous result arrives (closed loop: the most a session can get);
``--pace 0.1`` sends at most one frame per 0.1 s. ``--rate 10`` is what a browser does: a frame every
0.1 s whatever the answers (Gradio's webcam sends on its ``stream_every`` clock, the server works on
the newest); latency is then measured from the newest frame sent before each result, and the frames
that got no result of their own are counted as dropped.

Bounded on purpose: only 127.0.0.1 / localhost / ::1 is accepted, every session stops after
``--frames`` results or ``--seconds``, and the whole run has a hard deadline.

Reported per concurrency level: round-trip frames/s per session (median over sessions) and all
sessions together, round-trip latency p50/p95 (frame sent → its result received; a session's
first frame, which also waits in the queue, is counted apart), how long sessions waited for a
stream slot (the app serves `fer.app.live.CONCURRENCY` streams at once), and errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402  (a Gradio dependency)

from fer.app.media import data_url  # noqa: E402
from fer.bench import compose_frame, summarise  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
API = "/gradio_api"
#: Hard limit on one whole run, whatever the options say.
MAX_RUN_S = 600.0


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash; refuses anything but a loopback address."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url!r}: this load test only talks to 127.0.0.1, localhost or ::1")
    return url.rstrip("/")


def frame_data_url() -> str:
    """The one-face benchmark frame as the browser's webcam stream sends it."""
    return data_url(compose_frame("1 face"), quality=92)


def live_endpoint(base: str) -> dict[str, Any]:
    """Find the webcam's stream event in the app's config (by its widget's element id
    ``live-input``): ``{"fn_index", "trigger_id", "inputs"}``."""
    config = httpx.get(f"{base}/config", timeout=30).json()
    webcam = next((c["id"] for c in config["components"] if c["props"].get("elem_id") == "live-input"), None)
    for dep in config["dependencies"]:
        if webcam is not None and [webcam, "stream"] in [list(t) for t in dep["targets"]]:
            return {"fn_index": dep["id"], "trigger_id": webcam, "inputs": dep["inputs"]}
    raise SystemExit(f"the app at {base} has no webcam stream event")


@dataclass
class SessionResult:
    """What one simulated browser session saw."""

    wait_s: float | None = None          # join → its stream started (queue wait for a slot)
    first_frame_s: float | None = None   # join → first result
    rtt_ms: list[float] = field(default_factory=list)  # later frames: sent → result
    times: list[float] = field(default_factory=list)   # arrival times of all results
    without_picture: int = 0                            # results that carried no analysed picture
    status: str | None = None                           # the app's status line of the last such result
    error: str | None = None
    sent: int = 0                                       # frames sent while streaming (--rate)

    @property
    def fps(self) -> float | None:
        """Results per second between the first and the last result."""
        if len(self.times) < 2:
            return None
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def run_session(base: str, endpoint: dict[str, Any], frame: str, frames: int, seconds: float, pace: float,
                deadline: float, rate: float = 0.0) -> SessionResult:
    """One browser session: join, stream ``frames`` frames (or for ``seconds``), close; with
    ``rate`` > 0, frames leave at that rate from their own thread, whatever the answers."""
    result = SessionResult()
    session_hash = uuid.uuid4().hex[:11]
    # Inputs after the webcam: the "I'm posing" dropdown (not posing) and three gr.State values,
    # which the browser sends as null (the server keeps them per session).
    body = {"data": [{"url": frame, "path": None, "meta": {"_type": "gradio.FileData"}}, "(not posing)", None, None,
                     None],
            "event_data": None, "fn_index": endpoint["fn_index"], "trigger_id": endpoint["trigger_id"],
            "session_hash": session_hash}
    with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0)) as client:
        joined = time.perf_counter()
        response = client.post(f"{API}/queue/join", json=body)
        if response.status_code != 200:
            result.error = f"join: HTTP {response.status_code} {response.text[:200]}"
            return result
        event_id = response.json()["event_id"]
        sent = joined
        closing = False
        started_streaming: float | None = None
        stop = threading.Event()

        def clock() -> None:  # --rate: the browser's own frame clock
            nonlocal sent
            with httpx.Client(base_url=base, timeout=httpx.Timeout(60.0)) as sender:
                while not stop.wait(max(0.0, sent + 1.0 / rate - time.perf_counter())):
                    sent = time.perf_counter()
                    result.sent += 1
                    sender.post(f"{API}/stream/{event_id}", json=body)
        with client.stream("GET", f"{API}/queue/data", params={"session_hash": session_hash},
                           timeout=httpx.Timeout(60.0, read=90.0)) as sse:
            for line in sse.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg")
                now = time.perf_counter()
                if kind == "process_starts":
                    result.wait_s = now - joined
                elif kind in ("process_streaming", "process_generating"):
                    if not msg.get("success", True):
                        result.error = f"frame failed: {str(msg.get('output'))[:200]}"
                        break
                    data = (msg.get("output") or {}).get("data") or []
                    # A frame the app analysed comes back with its pictures as JPEG data URLs; one it
                    # could not analyse only with a status line.
                    if not any("data:image" in str(v) for v in data):
                        result.without_picture += 1
                        result.status = next((v for v in data if isinstance(v, str) and "⚠" in v), result.status)
                    if not result.times:
                        result.first_frame_s = now - joined
                        started_streaming = now
                        if rate > 0:
                            threading.Thread(target=clock, daemon=True).start()
                    else:
                        result.rtt_ms.append(1000 * (now - sent))
                    result.times.append(now)
                    assert started_streaming is not None
                    done = len(result.times) >= frames or now - started_streaming >= seconds or now >= deadline
                    if done and not closing:
                        closing = True
                        stop.set()
                        client.post(f"{API}/stream/{event_id}/close")
                    elif not done and rate <= 0:
                        if pace > 0:
                            time.sleep(max(0.0, sent + pace - time.perf_counter()))
                        sent = time.perf_counter()
                        client.post(f"{API}/stream/{event_id}", json=body)
                elif kind == "process_completed":
                    if not msg.get("success", True) and not closing:
                        result.error = f"stream ended: {str(msg.get('output'))[:200]}"
                    break
                elif kind in ("unexpected_error", "server_stopped"):
                    result.error = f"{kind}: {msg.get('message')}"
                    break
                if time.perf_counter() > deadline + 30:
                    result.error = "deadline passed"
                    break
        stop.set()
    return result


def run_level(base: str, endpoint: dict[str, Any], frame: str, sessions: int, frames: int, seconds: float,
              pace: float, rate: float = 0.0) -> dict[str, Any]:
    """``sessions`` concurrent sessions; their summary."""
    deadline = time.perf_counter() + min(MAX_RUN_S, seconds * (sessions + 1) + 60)
    results: list[SessionResult] = [SessionResult() for _ in range(sessions)]

    def work(i: int) -> None:
        try:
            results[i] = run_session(base, endpoint, frame, frames, seconds, pace, deadline, rate)
        except httpx.HTTPError as exc:
            results[i].error = f"{type(exc).__name__}: {exc}"

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline + 60 - time.perf_counter()))
    wall = time.perf_counter() - start
    rtts = [ms for r in results for ms in r.rtt_ms]
    fps = [r.fps for r in results if r.fps is not None]
    waits = [r.wait_s for r in results if r.wait_s is not None]
    total = sum(len(r.times) for r in results)
    lat = summarise(rtts)
    return {
        "sessions": sessions,
        "frames_received": total,
        "wall_s": round(wall, 2),
        "fps_per_session_median": round(float(np.median(fps)), 2) if fps else None,
        "fps_per_session_min": round(float(np.min(fps)), 2) if fps else None,
        "fps_all_sessions": round(total / wall, 2) if wall > 0 else None,
        "latency_ms_p50": lat["ms_p50"],
        "latency_ms_p95": round(float(np.percentile(rtts, 95)), 2) if rtts else None,
        "first_frame_s_median": round(float(np.median([r.first_frame_s for r in results if r.first_frame_s])), 3)
        if any(r.first_frame_s for r in results) else None,
        "slot_wait_s_max": round(max(waits), 2) if waits else None,
        "results_without_picture": sum(r.without_picture for r in results),
        "status_seen": sorted({r.status for r in results if r.status}),
        "errors": [r.error for r in results if r.error],
        **({"frames_sent": sum(r.sent for r in results),
            "dropped_fraction": round(1 - sum(max(len(r.times) - 1, 0) for r in results)
                                      / max(1, sum(r.sent for r in results)), 3)} if rate > 0 else {}),
    }


# --------------------------------------------------------------------------- the app


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, timeout: float = 180.0) -> subprocess.Popen:
    """Launch ``app.py`` on 127.0.0.1:``port`` and wait until it answers."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "FER_APP_DIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"fer-load-app-{port}"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"fer-stream-load-app-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    until = time.perf_counter() + timeout
    while time.perf_counter() < until:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    stop_app(proc)
    raise SystemExit(f"app.py did not answer within {timeout:.0f} s; see {log.name}")


def app_under_test(url: str | None) -> tuple[str, subprocess.Popen | None]:
    """The app a benchmark talks to: ``url`` (loopback only), or, when None, ``app.py`` started on
    a free port. Returns ``(base URL without a trailing slash, the started process or None)``;
    stop a started one with `stop_app`."""
    if url is not None:
        return check_loopback(url), None
    port = free_port()
    print(f"… starting app.py on 127.0.0.1:{port}", file=sys.stderr)
    return f"http://127.0.0.1:{port}", start_app(port)


def stop_app(proc: subprocess.Popen) -> None:
    """Stop the app started by `start_app` (this process's child only)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="the running app, loopback only (default: start one)")
    parser.add_argument("--start-app", action="store_true", help="start app.py on a free port and stop it afterwards")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8], help="concurrency levels (default: 1 8)")
    parser.add_argument("--frames", type=int, default=100, help="results per session (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest a session streams (default: %(default)s)")
    parser.add_argument("--pace", type=float, default=0.0,
                        help="least seconds between a session's frames; 0 = closed loop, 0.1 = the browser's rate")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second each session sends whatever the answers (a browser: 10)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args(argv)
    if not 1 <= args.frames <= 2000 or not 0 < args.seconds <= 120 or not all(1 <= s <= 16 for s in args.sessions):
        raise SystemExit("keep it bounded: 1..2000 frames, 0..120 s, 1..16 sessions")
    if args.url is None and not args.start_app:
        args.start_app = True
    base, proc = app_under_test(None if args.start_app else args.url)
    try:
        endpoint = live_endpoint(base)
        frame = frame_data_url()
        levels = []
        for n in args.sessions:
            print(f"… {n} session(s)", file=sys.stderr)
            levels.append(run_level(base, endpoint, frame, n, args.frames, args.seconds, args.pace, args.rate))
    finally:
        if proc is not None:
            stop_app(proc)
    doc = {"benchmark": "benchmarks/stream_load.py", "url": base, "endpoint": "live_frame (Gradio stream)",
           "frame": "640x480 JPEG q0.92, 1 face", "pace_s": args.pace, "rate_hz": args.rate, "frames_per_session": args.frames,
           "seconds_per_session": args.seconds, "load_average": [round(v, 2) for v in os.getloadavg()],
           "levels": levels}
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0 if all(not level["errors"] for level in levels) else 1


if __name__ == "__main__":
    raise SystemExit(main())
