"""The app's own folders on disk, who owns them, and what removes files from them.

Each running app owns one folder (``FER_APP_DIR`` when set, else the first free slot
``<base>/fer-app/<n>``, base being ``GRADIO_TEMP_DIR`` when the caller set one, else the system
temp folder), held by an exclusive lock on ``instance.lock`` for the life of the process: a second
app never shares it (with the same ``FER_APP_DIR`` it stops with a one-line message), and only
an unlocked slot, whose owner has exited, is ever swept. Nothing outside that folder is touched,
whatever else shares ``GRADIO_TEMP_DIR`` or the temp folder. Layout::

    instance.lock  the owner's lock (its pid inside, for the message a second app gets)
    uploads/       Gradio's upload folder (``GRADIO_TEMP_DIR`` is pointed here): Gradio stores an
                   upload as ``uploads/<hash>/<name>`` and its own cache cleaning (``delete_cache``)
                   removes it after `fer.limits.UPLOAD_MAX_AGE_S`.
    work/          the app's temporary files while a request runs (a clip being decoded); each
                   is deleted when its request ends.

Nothing removes a file a request may still be reading: an upload is read at once, and removed only
once older than `fer.limits.UPLOAD_MAX_AGE_S`. Two sweeps back Gradio's cleaning: at start-up,
everything a killed server left in the folder now owned (`sweep_at_start`); while running, every
upload older than the age, and the half-received files of torn uploads, which Gradio writes as
``uploads/tmp*`` and never tracks (`sweep_uploads`). Importing this module does not import Gradio.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from fer.errors import InputError

log = logging.getLogger(__name__)

#: Gradio's layout of an upload: a folder named by the hex digest of the file's bytes.
HASH_FOLDER = re.compile(r"[0-9a-f]{40,128}")
#: Slots tried under ``<base>/fer-app`` when ``FER_APP_DIR`` is not set.
MAX_SLOTS = 64
LOCK_NAME = "instance.lock"

#: The locks this process holds: folder → open lock file (kept open: closing releases the lock).
_HELD: dict[str, int] = {}


class FolderInUse(InputError):
    """Another running app owns the folder asked for."""


def default_base() -> Path:
    """Where the slots live: ``<GRADIO_TEMP_DIR or system temp>/fer-app`` (read at call time)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "fer-app"


def app_dir() -> Path:
    """This app's folder: ``FER_APP_DIR`` (`prepare` sets it to the slot it claimed)."""
    explicit = os.environ.get("FER_APP_DIR")
    return Path(explicit) if explicit else default_base() / "unclaimed"


def upload_dir() -> Path:
    """Gradio's upload folder: ``app_dir()/uploads``."""
    return app_dir() / "uploads"


def work_dir() -> Path:
    """Where requests keep their temporary files while they run."""
    return app_dir() / "work"


def claim(folder: Path) -> bool:
    """Take the exclusive lock of ``folder`` (created if missing) for this process.

    Returns:
        True when this process holds it now; False when another process does.
    """
    key = os.path.abspath(folder)
    if key in _HELD:
        return True
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[key] = fd
    return True


def release(folder: Path) -> None:
    """Give up the lock of ``folder`` (tests; a process's locks go with it anyway)."""
    fd = _HELD.pop(os.path.abspath(folder), None)
    if fd is not None:
        os.close(fd)


def _owner_pid(folder: Path) -> str:
    with contextlib.suppress(OSError):
        return (folder / LOCK_NAME).read_text()[:12].strip() or "?"
    return "?"


def prepare() -> Path:
    """Claim this app's folder, point Gradio at its ``uploads`` (before any Blocks is built:
    Gradio reads GRADIO_TEMP_DIR when it creates them), create the folders, and sweep what a
    previous owner left. Returns the upload folder.

    Raises:
        FolderInUse: ``FER_APP_DIR`` names a folder another running app owns; or every slot is taken.
    """
    explicit = os.environ.get("FER_APP_DIR")
    if explicit:
        folder = Path(explicit)
        if not claim(folder):
            raise FolderInUse(f"FER_APP_DIR={folder} is in use by another running app (pid {_owner_pid(folder)}); "
                              "give each app its own folder")
    else:
        base = default_base()
        slot = next((base / str(n) for n in range(1, MAX_SLOTS + 1) if claim(base / str(n))), None)
        if slot is None:
            raise FolderInUse(f"all {MAX_SLOTS} app folders under {base} are in use; set FER_APP_DIR")
        os.environ["FER_APP_DIR"] = str(slot)
    uploads = upload_dir()
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    for sub in (uploads, work_dir()):
        sub.mkdir(parents=True, exist_ok=True)
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
