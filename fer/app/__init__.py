"""The Gradio app, one module per concern:

- `server`: the page, the events between tabs, launch options and background upkeep;
- one module per tab: `live`, `image`, `video`, `evaluate`, `settings_tab`, `about`;
- shared: `settings` (what a session chooses, the shared pipelines), `views` (the result block),
  `trust` (how far to trust the answer),
  `charts` (SVG timelines, count tables), `media` (pictures inline), `sessions` (bounded memory);
- safety: `uploads` (the one place a client-named file is judged and opened), `safezip`,
  `security` (HTTP hardening: routes, `file=`, body bounds), `owners` (a session works only from
  the browser that opened it), `folders` (the folder each app owns, and its sweeps);
- `internals`: every use of Gradio's private internals;
- `api`: the stateless named HTTP endpoints.

Importing this package does not import Gradio; `main` does, after pointing Gradio at the app's
own upload folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """``python app.py``: prepare the app's folders, set the CPU threads, build and serve the app.

    ``FER_TORCH_THREADS`` (default 1) sets PyTorch's threads per operation: the CNN runs at batch 1
    for a few milliseconds, so concurrent requests gain more from whole cores than from split ones.
    ``FER_CV2_THREADS`` (default 1) sets OpenCV's pool for the same reason: each resize, warp and
    DNN call is small, and the app already runs frames of several visitors on separate threads
    (issue 24 measured one stream at the same speed for about 30 % less CPU with 1).
    Pillow's own decompression-bomb guard is set to the app's pixel limit for the whole process (a
    second line behind `fer.io`'s check), which an app may do and the library does not.
    """
    import logging
    import sys

    from PIL import Image

    from fer.app import folders
    from fer.limits import MAX_PIXELS

    # Before the folders are prepared: their start-up sweep says what it removed.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        folders.prepare()
    except folders.FolderInUse as exc:
        sys.exit(f"error: {exc}")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("FER_TORCH_THREADS", "1"))))
    import cv2

    cv2.setNumThreads(max(1, int(os.environ.get("FER_CV2_THREADS", "1"))))
    from fer.app.server import run

    run(argv)
