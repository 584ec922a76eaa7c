"""The app's own folders on disk, and what removes files from them.

Layout (``FER_APP_DIR``, default ``<system temp>/fer-app``)::

    uploads/   Gradio's upload folder (GRADIO_TEMP_DIR unless the caller set one): Gradio stores an
               upload as ``uploads/<hash>/<name>`` and its own cache cleaning (``delete_cache``)
               removes it after `fer.limits.UPLOAD_MAX_AGE_S`.
    work/      the app's temporary files while a request runs (an unpacked zip, a clip being
               decoded); each is deleted when its request ends.

Nothing removes a file a request may still be reading: an upload is read at once, and removed only
once older than `fer.limits.UPLOAD_MAX_AGE_S`. Two sweeps back Gradio's cleaning: at start-up,
everything a killed server left (`sweep_at_start`); while running, every upload older than the age,
and the half-received files of torn uploads, which Gradio writes as ``uploads/tmp*`` and never
tracks (`sweep_uploads`). Importing this module does not import Gradio.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: Gradio's layout of an upload: a folder named by the hex digest of the file's bytes.
HASH_FOLDER = re.compile(r"[0-9a-f]{40,128}")


def app_dir() -> Path:
    """``FER_APP_DIR``, else ``<system temp>/fer-app`` (read at call time)."""
    return Path(os.environ.get("FER_APP_DIR") or Path(tempfile.gettempdir()) / "fer-app")


def upload_dir() -> Path:
    """Gradio's upload folder: GRADIO_TEMP_DIR when set, else ``app_dir()/uploads``."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or app_dir() / "uploads")


def work_dir() -> Path:
    """Where requests keep their temporary files while they run."""
    return app_dir() / "work"


def prepare() -> Path:
    """Point Gradio at `upload_dir` (before any Blocks is built: Gradio reads GRADIO_TEMP_DIR when
    it creates them), create the folders, and sweep what a previous run left. Returns the upload folder."""
    uploads = upload_dir()
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    for folder in (uploads, work_dir()):
        folder.mkdir(parents=True, exist_ok=True)
    removed = sweep_at_start(uploads, work_dir())
    if removed:
        log.info("removed %d files a previous run left on disk", removed)
    return uploads


def sweep_at_start(uploads: Path, work: Path) -> int:
    """Remove a previous run's files: all of ``work``, and in ``uploads`` what Gradio's layout
    names (hash folders, ``tmp*`` files of torn uploads, its ``deep_links`` folder); anything
    else a user keeps there is left alone. Returns the number of files removed."""
    removed = 0
    for entry in _entries(work):
        removed += _remove(entry)
    for entry in _entries(uploads):
        if entry.is_dir() and not entry.is_symlink() and (HASH_FOLDER.fullmatch(entry.name) or entry.name == "deep_links"):
            removed += _remove(entry)
        elif _is_torn_upload(entry):
            removed += _remove(entry)
    return removed


def sweep_uploads(uploads: Path, max_age_s: float, keep: Collection[str] = (), now: float | None = None) -> int:
    """Remove what has been in the upload folder longer than ``max_age_s``: uploads
    (``<hash>/<name>``, except the files in ``keep``, Gradio's shared copies of examples) and the
    ``tmp*`` files of torn uploads; then the hash folders left empty. Returns the files removed.

    Gradio's own cache cleaning (``delete_cache``) removes uploads too, but it walks a set that the
    upload route adds to from another thread, and the first upload that lands mid-walk stops it for
    the rest of the server's life; this sweep reads the folder itself, so it cannot be stopped so.
    """
    now = time.time() if now is None else now

    def old(entry: Path) -> bool:
        st = entry.lstat()
        return now - max(st.st_mtime, st.st_ctime) > max_age_s

    removed = 0
    for entry in _entries(uploads):
        try:
            if _is_torn_upload(entry) and old(entry):
                removed += _remove(entry)
            elif entry.is_dir() and not entry.is_symlink() and HASH_FOLDER.fullmatch(entry.name):
                for file in _entries(entry):
                    if str(file) not in keep and (file.is_symlink() or file.is_file()) and old(file):
                        removed += _remove(file)
                with contextlib.suppress(OSError):
                    entry.rmdir()  # only when empty
        except OSError:
            continue  # gone meanwhile
    return removed


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private temporary folder under `work_dir`, deleted when the block ends (a start-up
    sweep removes it if the process was killed first)."""
    work = work_dir()
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=work) as folder:
        yield Path(folder)


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _is_torn_upload(entry: Path) -> bool:
    return entry.name.startswith("tmp") and entry.is_file() and not entry.is_symlink()


def _remove(entry: Path) -> int:
    """Delete a file or a folder tree (links are removed, never followed); the number of files."""
    try:
        if entry.is_dir() and not entry.is_symlink():
            count = sum(1 for p in entry.rglob("*") if not p.is_dir())
            shutil.rmtree(entry, ignore_errors=True)
            return count
        entry.unlink()
        return 1
    except OSError:
        return 0
