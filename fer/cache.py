"""The one cache folder of the library: derived files only (exported model graphs, dataset face
crops), never anything of a user's pictures. Read from the environment at every call, so a test or a
notebook that changes ``FER_CACHE_DIR`` is obeyed at once."""

from __future__ import annotations

import os
from pathlib import Path

#: ``FER_CACHE_DIR`` values that turn every cache off.
OFF = ("", "0", "off", "no", "false", "none")


def cache_dir(kind: str) -> Path | None:
    """The folder for one kind of cached file (``"onnx"``, ``"crops"``).

    ``$FER_CACHE_DIR/KIND``; with ``FER_CACHE_DIR=off`` (or ``0``, ``no``, ``false``, empty) None:
    nothing is cached. Unset: ``$XDG_CACHE_HOME/fer/KIND``, else ``~/.cache/fer/KIND``. The folder
    is not created here.
    """
    root = os.environ.get("FER_CACHE_DIR")
    if root is not None:
        if root.strip().lower() in OFF:
            return None
        return Path(root).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "fer" / kind
