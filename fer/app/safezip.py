"""Reading an uploaded zip of labelled faces member by member into memory without letting it
escape, explode, or crash the request: every refusal is one line naming the entry."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from fer.errors import InputError
from fer.limits import MAX_ZIP_BYTES, MAX_ZIP_ENTRIES, MAX_ZIP_UNPACKED_BYTES

#: Deepest folder nesting and longest entry name accepted (file systems refuse names over 255
#: bytes a component; no labelled dataset needs more than a few folders).
MAX_DEPTH = 16
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def _shown(entry: str) -> str:
    return repr(entry if len(entry) <= 60 else entry[:57] + "...")


def _checked_parts(name: str, entry: str) -> tuple[str, ...]:
    """The path components of a zip entry, or `InputError` for one that could escape, clash or
    not be written."""
    normalised = entry.replace("\\", "/")
    parts = tuple(p for p in PurePosixPath(normalised).parts if p != "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", entry) or ".." in parts:
        raise InputError(f"{name}: refused entry {_shown(entry)} (absolute path or '..')")
    parts = tuple(p for p in parts if p != ".")
    if not parts:
        raise InputError(f"{name}: refused entry {_shown(entry)} (not a file name)")
    if len(parts) > MAX_DEPTH:
        raise InputError(f"{name}: refused entry {_shown(entry)} (nested over {MAX_DEPTH} folders deep)")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts) \
            or len(normalised.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InputError(f"{name}: refused entry {_shown(entry)} (name too long)")
    if any("\x00" in p for p in parts):
        raise InputError(f"{name}: refused entry {_shown(entry)} (not a file name)")
    return parts


def read_members(
    data: bytes,
    name: str = "the archive",
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_unpacked: int = MAX_ZIP_UNPACKED_BYTES,
) -> dict[PurePosixPath, bytes]:
    """The files of a zip archive held in memory, read member by member into memory after checking
    every entry: nothing is written anywhere, and no name can point outside the archive.

    Refused: archives over ``max_bytes``, with more than ``max_entries`` entries, declaring more
    than ``max_unpacked`` bytes or actually inflating past it (declared sizes can lie); entries with
    absolute paths, drive letters or ``..``; entries named ``.``, nested too deep or with names too
    long; a file and a folder of the same name; a file twice; symbolic links; encrypted entries;
    names that claim UTF-8 and are not.

    Args:
        data: the archive's bytes.
        name: what to call the archive in messages.
    Returns:
        Each file's checked relative path (``faces/happy/a.png``, ``.`` parts dropped) → its bytes,
        in archive order; folders are implied by the paths.
    Raises:
        InputError: the archive is refused (one line naming the entry).
    """
    if len(data) > max_bytes:
        raise InputError(f"{name}: archive is {len(data) / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except UnicodeDecodeError:
        raise InputError(f"{name}: its file names are marked UTF-8 but are not; re-create the zip") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InputError(f"{name}: not a zip archive (or a damaged one)") from None
    members: dict[PurePosixPath, bytes] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise InputError(f"{name}: archive has {len(infos)} entries, over the {max_entries} limit")
        declared = sum(info.file_size for info in infos)
        if declared > max_unpacked:
            raise InputError(
                f"{name}: archive would unpack to {declared / 2**20:.0f} MB, over the {max_unpacked / 2**20:.0f} MB limit"
            )
        kinds: dict[tuple[str, ...], bool] = {}  # path parts -> is a folder
        for info in infos:
            parts = _checked_parts(name, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(f"{name}: refused entry {_shown(info.filename)} (symbolic link)")
            if info.flag_bits & 0x1:
                raise InputError(f"{name}: entry {_shown(info.filename)} is encrypted")
            for depth in range(1, len(parts)):
                if not kinds.setdefault(parts[:depth], True):
                    raise InputError(f"{name}: entry {_shown(info.filename)} clashes with a file of the same name")
            known = kinds.setdefault(parts, info.is_dir())
            if known != info.is_dir():
                raise InputError(f"{name}: entry {_shown(info.filename)} clashes with a folder or file of the same name")
        unpacked = 0
        for info in infos:
            if info.is_dir():
                continue
            path = PurePosixPath(*_checked_parts(name, info.filename))
            if path in members:
                raise InputError(f"{name}: entry {_shown(info.filename)} appears twice")
            chunks = []
            try:
                with archive.open(info) as source:
                    while chunk := source.read(1 << 20):
                        unpacked += len(chunk)
                        if unpacked > max_unpacked:
                            raise InputError(
                                f"{name}: archive unpacks to more than {max_unpacked / 2**20:.0f} MB (a zip bomb?)"
                            )
                        chunks.append(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
                raise InputError(f"{name}: damaged entry {_shown(info.filename)} ({exc})") from None
            members[path] = b"".join(chunks)
    return members


def safe_extract(
    data: bytes,
    dest: str | os.PathLike,
    name: str = "the archive",
    **limits: int,
) -> list[Path]:
    """Write the files `read_members` accepts (same refusals, same ``limits``) under ``dest``, for
    a caller that needs them on disk (the app does not: Evaluate reads the members in memory).

    Returns:
        The files written, inside ``dest``.
    Raises:
        InputError: the archive is refused before anything is written, or a file cannot be written.
    """
    members = read_members(data, name, **limits)
    dest = Path(dest).resolve()
    written: list[Path] = []
    for path, body in members.items():
        target = dest.joinpath(*path.parts)
        if not target.resolve().is_relative_to(dest):
            raise InputError(f"{name}: refused entry {_shown(str(path))} (outside the archive folder)")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as out:
                out.write(body)
        except OSError as exc:
            raise InputError(f"{name}: entry {_shown(str(path))} cannot be unpacked "
                             f"({exc.strerror or type(exc).__name__})") from None
        written.append(target)
    return written


def members_root(paths: Iterable[PurePosixPath], labels: frozenset[str] = frozenset()) -> PurePosixPath:
    """The folder (relative to the archive) holding the labelled data: descend through single
    wrapping folders (``faces.zip`` → ``faces/happy/...``), skipping macOS ``__MACOSX`` metadata and
    hidden names, but never into a folder that holds the images themselves or is named as a label
    (``happy/a.jpg`` is one label folder, not a wrapper)."""
    files = [p for p in paths if not any(part.startswith((".", "__MACOSX")) for part in p.parts)]
    current = PurePosixPath()
    while True:
        inside = [p.relative_to(current) for p in files if p.is_relative_to(current) and p != current]
        entries = {p.parts[0] for p in inside}
        dirs = {p.parts[0] for p in inside if len(p.parts) > 1}
        if len(dirs) == 1 and len(entries) == 1:
            (inner,) = dirs
            holds_folders = any(len(p.parts) > 2 for p in inside)
            if holds_folders and inner.lower() not in labels:
                current = current / inner
                continue
        return current
