"""Regenerate the README screenshots with the browser tests' own code: the same ``python app.py``
subprocess, the same headless Chromium with the astronaut as a fake webcam, the same user flows
(`tests/browser_helpers.py`).

Usage:
    python scripts/screenshots.py                 # writes docs/screenshots/{live,image,evaluate}.png
    python scripts/screenshots.py --out /tmp/shots

Needs Debian's ``chromium`` (or ``FER_CHROMIUM=/path/to/chrome``), ``ffmpeg`` and Playwright
(requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_helpers import (  # noqa: E402
    VIEWPORT,
    AppPage,
    app_page,
    browser_prerequisites,
    make_eval_zip,
    run_evaluation,
    running_app_server,
    running_browser,
    show_image,
    start_webcam,
)

if TYPE_CHECKING:
    from playwright.sync_api import FloatRect

#: Space kept below the last element shown, in CSS pixels.
MARGIN = 16


def shoot(app: AppPage, path: Path, *last: str) -> Path:
    """Save the page from its top down to the lowest bottom edge of the elements ``last``.

    Raises:
        RuntimeError: the page logged errors (a broken page is no screenshot for the README), or an
            element is not shown.
    """
    problems = app.problems()
    if problems:
        raise RuntimeError("the page is not healthy:\n" + "\n".join(problems))
    bottom = 0.0
    for selector in last:
        box = app.page.locator(selector).first.bounding_box()
        if box is None:
            raise RuntimeError(f"{selector} is not shown")
        bottom = max(bottom, box["y"] + box["height"])
    # A clip of the full page, not a resized viewport: resizing would reflow the layout.
    clip: FloatRect = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom + MARGIN}
    path.parent.mkdir(parents=True, exist_ok=True)
    app.page.screenshot(path=str(path), full_page=True, clip=clip)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    """Start the app and a browser, walk through the live, image and evaluate tabs, save PNGs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    args = parser.parse_args(argv)
    reason = browser_prerequisites()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="fer-screenshots-") as tmp:
        work = Path(tmp)
        with running_app_server(work / "server") as server, running_browser(work) as browser:
            with app_page(browser, server) as app:
                start_webcam(app)
                app.wait_text("#live-top-k [data-testid=label-output-value]", r"^happy$")
                app.page.wait_for_timeout(3000)  # let the smoothed label and the statistics settle
                shoot(app, args.out / "live.png", "#live-top-k", "#live-saliency")
            with app_page(browser, server) as app:
                show_image(app)
                shoot(app, args.out / "image.png", "#top-k-label", "#saliency-overlay", "#gradcam")
            with app_page(browser, server) as app:
                run_evaluation(app, make_eval_zip(work / "faces.zip"))
                shoot(app, args.out / "evaluate.png", "#eval-table", "#eval-plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
