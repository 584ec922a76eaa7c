"""Live on the device: frames per second in headless Chromium with a fake webcam, the first
result's delay, and what a first visit downloads.

    .venv/bin/python benchmarks/ondevice_fps.py                 # starts app.py on a free port, stops it after
    .venv/bin/python benchmarks/ondevice_fps.py --seconds 30

The fake webcam plays the tests' 640×480 video of the astronaut (tests.browser_helpers.make_fake_webcam).
The page counts the frames it analysed in ``#live-top-k``'s ``data-frame``; the rate is the count's
growth over ``--seconds``, after the first 10 frames; ``page_ms_per_frame_p50`` is the page's own
work per frame (read the preview, analyse, draw; median of the last 50), what the rate would be
bounded by on an idle core. Chromium runs with its own defaults (no GPU),
on whatever cores the machine has: the figure is the machine's, so say which one gave it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the rate is measured")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.browser_helpers import make_fake_webcam, start_app_server, stop_app_server
    from tests.browser_page import launch_chromium

    with tempfile.TemporaryDirectory(prefix="fer-ondevice-") as tmp:
        server = start_app_server(Path(tmp))
        try:
            video = make_fake_webcam(Path(tmp) / "webcam.y4m")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright.chromium, video)
                context = browser.new_context()
                context.grant_permissions(["camera"], origin=server.url.rstrip("/"))
                page = context.new_page()
                requests: list = []
                page.on("requestfinished", lambda request: requests.append(request))
                page.goto(server.url)
                page.get_by_role("tab", name="Live", exact=True).click()
                frame = "() => +(document.querySelector('#live-top-k')?.dataset.frame || 0)"
                page.wait_for_function("() => document.querySelector('#live-top-k')?.dataset.where === 'device'",
                                       timeout=120_000)
                page.locator("#live-input").get_by_text(re.compile("Access Webcam", re.I)).click()
                clicked = time.perf_counter()
                page.wait_for_function(f"({frame})() >= 1", timeout=120_000)
                first_s = time.perf_counter() - clicked
                page.wait_for_function(f"({frame})() >= 10", timeout=120_000)
                start, count0 = time.perf_counter(), page.evaluate(frame)
                time.sleep(args.seconds)
                elapsed, count1 = time.perf_counter() - start, page.evaluate(frame)
                frame_ms = float(page.evaluate("() => document.querySelector('#live-top-k').dataset.frameMs"))
                downloaded = sum(r.sizes()["responseBodySize"] for r in requests)
                ondevice = sum(r.sizes()["responseBodySize"] for r in requests if "/ondevice/" in r.url)
                browser.close()
        finally:
            stop_app_server(server)
    import os

    print(json.dumps({"frames_per_s": round((count1 - count0) / elapsed, 1), "frames": count1 - count0,
                      "seconds": round(elapsed, 1), "page_ms_per_frame_p50": frame_ms, "first_result_s_after_camera_click": round(first_s, 2),
                      "first_visit_mb": round(downloaded / 1e6, 2), "ondevice_files_mb": round(ondevice / 1e6, 2),
                      "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
