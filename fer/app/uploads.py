"""The one place where the app opens a file a client names.

Handlers receive Gradio's raw file records (events run with ``preprocess=False``), so a client can
put any path in one. Only an upload this server received is ever read (Gradio stores it as
``<upload folder>/<hash>/<name>``); the shipped examples are read by the app itself, chosen by a
button, never by a path. Anything else, whether or not it exists, gets the same `REFUSED` message,
which never repeats the path. An accepted file is read once into memory and never deleted here:
Gradio's cache cleaning removes uploads.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer.app.folders import HASH_FOLDER, upload_dir
from fer.errors import InputError

#: The refusal for a record naming a file this server did not receive: the same for every path.
REFUSED = "this file was not uploaded to this server; upload it again"

#: Longest name shown back to the user.
_MAX_NAME = 80


@dataclass(frozen=True)
class Upload:
    """A received file, read into memory.

    Attributes:
        data: the file's bytes (at most the reader's ``max_bytes``).
        name: the name the user gave it (no folders, printable, at most 80 characters).
    """

    data: bytes
    name: str


def record_of(value: Any) -> Mapping[str, Any] | None:
    """The file record inside a widget value: Gradio's ``{"path", "orig_name", …}``; a video's
    is nested under ``"video"``. None when there is no file (an empty widget)."""
    if isinstance(value, Mapping) and isinstance(value.get("video"), Mapping):
        value = value["video"]
    if isinstance(value, Mapping):
        return value
    if value is None:
        return None
    raise InputError(REFUSED)


def shown_name(record: Mapping[str, Any] | None, default: str = "the upload") -> str:
    """What to call an upload in messages: its original file name, cleaned (the client chose it)."""
    raw = record.get("orig_name") if record else None
    if not isinstance(raw, str) or not raw.strip():
        return default
    name = re.sub(r"[\x00-\x1f\x7f]", "", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 1] + "…"
    return name or default


def read_upload(value: Any, max_bytes: int) -> Upload | None:
    """Read the file a widget value names, if this server received it.

    Args:
        value: the widget's raw value (see `record_of`).
        max_bytes: larger files are refused (with their size: the client sent them).
    Returns:
        The `Upload`, or None for an empty widget.
    Raises:
        InputError: `REFUSED` for any path not received by this server (identical whether it
            exists or not); too large; unreadable.
    """
    record = record_of(value)
    if record is None:
        return None
    path = record.get("path")
    if path is None:
        return None
    if not isinstance(path, str) or not path or "\x00" in path:
        raise InputError(REFUSED)
    name = shown_name(record)
    file = _accepted(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: a link is refused.
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        raise InputError(REFUSED) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(REFUSED)
        if st.st_size > max_bytes:
            raise InputError(f"{name}: file is {st.st_size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{name}: file is over the {max_bytes / 2**20:.0f} MB limit")
    if not data:
        raise InputError(f"{name}: the file is empty")
    return Upload(data, name)


def is_url_like(path: str) -> bool:
    """Whether ``path`` is no local path at all: a URL (any scheme, or ``//host``) or one holding a
    NUL byte."""
    return "://" in path or path.startswith("//") or "\x00" in path


def _normal(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with ``..`` collapsed, links not resolved (a string operation)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def in_layout(path: str) -> bool:
    """Whether ``path`` names a file where Gradio stores uploads (``<upload folder>/<hash>/<name>``):
    a string check, no disk access (`_accepted` checks the folders on disk too)."""
    file = _normal(path)
    return file.parent.parent == _normal(upload_dir()) and bool(HASH_FOLDER.fullmatch(file.parent.name))


def harmful_record_path(path: Any) -> bool:
    """Whether a file record naming ``path`` must not reach Gradio at all.

    Gradio moves every file record of an event's inputs into its cache before any handler runs,
    even with preprocessing off: a URL it downloads (so the server would fetch for a client), and
    a path inside the upload folder it takes as already cached, whatever it is (the folder itself
    then stays in its cache set, and its shutdown fails deleting it). Other paths Gradio refuses
    itself, and the handlers answer them with `REFUSED` (`read_upload`).
    """
    if not isinstance(path, str):
        return False
    if is_url_like(path):
        return True
    normal, uploads = _normal(path), _normal(upload_dir())
    return (normal == uploads or uploads in normal.parents) and not in_layout(path)


def _accepted(path: str) -> Path:
    """``path`` if it is an upload in Gradio's layout, else `REFUSED`.

    The path is made absolute without resolving links (a link is then refused by ``O_NOFOLLOW``);
    ``..`` is collapsed first, so it cannot climb out of the upload folder.
    """
    if not in_layout(path):
        raise InputError(REFUSED)
    file, uploads = _normal(path), _normal(upload_dir())
    folder = file.parent
    # The folders on the way must be real folders of the upload tree, not links out of it.
    try:
        if folder.is_symlink() or not folder.resolve().parent == uploads.resolve():
            raise InputError(REFUSED)
    except OSError:
        raise InputError(REFUSED) from None
    return file
