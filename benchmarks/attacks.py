"""What each attack class of issue 21 costs the app server, on loopback only.

    .venv/bin/python benchmarks/attacks.py --out benchmarks/results/attacks.json

Starts ``app.py`` on a free port (or uses ``--url``, a process of this machine), warms it up with
``/predict`` calls, then runs each attack in turn and reports, per attack: the server's resident
memory (``VmRSS``) before and after, how long the attack took to be answered, what it was answered
(HTTP status or the app's message), and the ``/predict`` latency right after it (median of
``--probes`` calls). The attacks are the ones `tests/test_app_attacks.py` checks for correctness:

- ``run-routes``: 200 concurrent queue-less ``POST /run/predict`` (refused before any work);
- ``file-url``: 30 ``GET /file=<URL or server path>`` requests;
- ``upload-parts`` / ``upload-bytes``: one upload of 40 parts, one of 30 MB without ``Content-Length``;
- ``big-frame``: a webcam event carrying a 149 MB ``data:`` URL (refused by its declared length);
- ``video-bomb``: a 13 MB clip of 130 frames at 7680×4320 and 1000 frames/s (refused on its header);
- ``eps``: a PostScript file named ``holiday.jpg`` sent to ``/predict``;
- ``sessions``: 600 one-off sessions of no browser (the store keeps 1,000; visitors are kept).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from server_load import rss_mb, server_pid  # noqa: E402
from stream_load import app_under_test, stop_app  # noqa: E402

ASTRONAUT = ROOT / "assets" / "astronaut.png"
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
       b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")


class App:
    """The server under test: its base URL, pid and config."""

    def __init__(self, base: str, pid: int) -> None:
        self.base, self.pid = base, pid
        self.api = base + "/gradio_api"
        self.deps = {d.get("api_name"): d for d in httpx.get(base + "/config", timeout=30).json()["dependencies"]}

    def upload(self, data: bytes, name: str) -> dict[str, Any]:
        (path,) = httpx.post(self.api + "/upload", files={"files": (name, data)}, timeout=60).json()
        return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def call(self, name: str, data: list[Any]) -> Any:
        """A named endpoint through the queue; the data of its last event."""
        started = httpx.post(self.api + f"/call/{name}", json={"data": data}, timeout=60)
        if started.status_code != 200:
            return f"HTTP {started.status_code}"
        text = httpx.get(self.api + f"/call/{name}/{started.json()['event_id']}", timeout=120).text
        lines = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        return json.loads(lines[-1]) if lines else None

    def predict_ms(self, probes: int) -> float:
        """Median wall time of ``probes`` ``/predict`` calls (upload included), in ms."""
        times = []
        for _ in range(probes):
            start = time.perf_counter()
            answer = self.call("predict", [self.upload(ASTRONAUT.read_bytes(), "astronaut.png")])
            assert isinstance(answer, list) and answer[0]["label"] == "happy", answer
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)


def run_routes(app: App) -> str:
    with ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(lambda _: httpx.post(app.api + "/run/predict", json={"data": [None]},
                                                   timeout=60).status_code, range(200)))
    return f"HTTP {sorted(set(codes))}"


def file_url(app: App) -> str:
    names = ["http://example.com/x.png", "/etc/passwd", "/etc/nothing", str(ROOT / "app.py")] * 8
    return f"HTTP {sorted({httpx.get(app.api + f'/file={n}', timeout=30).status_code for n in names[:30]})}"


def upload_parts(app: App) -> str:
    files = [("files", (f"f{i}.png", b"\0" * (25 << 20 if i == 0 else 1024))) for i in range(40)]
    return f"HTTP {httpx.post(app.api + '/upload', files=files, timeout=120).status_code}"


def upload_bytes(app: App) -> str:
    def chunks() -> Any:
        yield b'--b0\r\nContent-Disposition: form-data; name="files"; filename="c.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * (1 << 20)

    response = httpx.post(app.api + "/upload", content=chunks(), timeout=120,
                          headers={"content-type": "multipart/form-data; boundary=b0"})
    return f"HTTP {response.status_code}"


def big_frame(app: App) -> str:
    dep = app.deps["on_frame"]
    url = "data:image/png;base64," + base64.b64encode(b"\0" * (112 << 20)).decode()  # 149 MB as text
    body = {"data": [url, None, None, None, None], "fn_index": dep["id"], "session_hash": uuid.uuid4().hex[:11],
            "event_data": None, "trigger_id": dep["targets"][0][0]}
    return f"HTTP {httpx.post(app.api + '/queue/join', json=body, timeout=120).status_code}"


def video_bomb(app: App) -> str:
    with tempfile.TemporaryDirectory() as folder:
        one, clip = Path(folder) / "one.mp4", Path(folder) / "bomb.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "color=c=gray:size=7680x4320:rate=1000", "-frames:v", "1", "-c:v", "libx264", "-preset",
                        "ultrafast", "-pix_fmt", "yuv420p", str(one)], check=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "129", "-i", str(one), "-c", "copy",
                        str(clip)], check=True)
        record = app.upload(clip.read_bytes(), "holiday.mp4")
    start = time.perf_counter()
    answer = app.call("analyse_video", [record, "5"])
    return f"{answer[0][:60]} ({time.perf_counter() - start:.1f} s)"


def eps(app: App) -> str:
    return app.call("predict", [app.upload(EPS, "holiday.jpg")])[1]["message"]


def sessions(app: App) -> str:
    dep = app.deps["on_reset"]

    def one(i: int) -> int:
        body = {"data": [None], "fn_index": dep["id"], "session_hash": f"bench{i:07d}", "event_data": None,
                "trigger_id": dep["targets"][0][0]}
        while True:
            code = httpx.post(app.api + "/queue/join", json=body, timeout=60).status_code
            if code != 503:
                return code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(600)))
    return f"HTTP {sorted(set(codes))}"


ATTACKS = {"run-routes": run_routes, "file-url": file_url, "upload-parts": upload_parts,
           "upload-bytes": upload_bytes, "big-frame": big_frame, "video-bomb": video_bomb, "eps": eps,
           "sessions": sessions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running app on loopback (default: start one)")
    parser.add_argument("--probes", type=int, default=5, help="/predict calls after each attack (default: 5)")
    parser.add_argument("--warmup", type=int, default=20, help="/predict calls before the first attack")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    base, proc = app_under_test(args.url)
    try:
        app = App(base, server_pid(int(base.rsplit(":", 1)[1])))
        app.predict_ms(args.warmup)
        baseline = app.predict_ms(args.probes)
        rows = []
        print(f"{'attack':14} {'RSS before':>10} {'after':>8} {'answered in':>11}  /predict after  answer")
        print(f"{'(none)':14} {rss_mb(app.pid):>8.0f}MB {'':>8} {'':>11}  {baseline:>9.0f} ms")
        for name, attack in ATTACKS.items():
            before = rss_mb(app.pid)
            start = time.perf_counter()
            answer = attack(app)
            took = time.perf_counter() - start
            after = rss_mb(app.pid)
            latency = app.predict_ms(args.probes)
            rows.append({"attack": name, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
                         "seconds": round(took, 2), "predict_ms_after": round(latency, 1), "answer": answer})
            print(f"{name:14} {before:>8.0f}MB {after:>6.0f}MB {took:>9.2f} s  {latency:>9.0f} ms  {answer}")
        report = {"predict_ms_before": round(baseline, 1), "attacks": rows}
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if proc is not None:
            stop_app(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
