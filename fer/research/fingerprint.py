"""Content hashes of dataset files, so that a run's identity follows the pixels and not only the names.

`file_sha256` hashes a file's bytes once and remembers the result, keyed by the file's absolute
path, size, modification time (ns) and inode: a file copied over another, edited in place or
replaced by a rename gets one of those changed and is hashed again. The memory lives in this
process and, unless ``FER_CACHE_DIR=off``, in ``fer.cache.cache_dir("hashes")/index.json`` (derived
data only: paths and digests), so a later run re-reads only files that changed. A file whose
bytes change while keeping size, mtime and inode (a deliberate ``touch -d`` after an edit on the
same inode) is not noticed; that is the price of not reading 10,000 files at every start
(``benchmarks/fingerprint_cost.py`` measures both).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

#: Bytes read at a time: large enough that hashing, not system calls, is the cost.
CHUNK = 1 << 20

#: Process-wide memory: absolute path → (size, mtime_ns, inode, sha256).
_MEMORY: dict[str, tuple[int, int, int, str]] = {}
_LOADED: set[str] = set()


def _index_file() -> Path | None:
    from fer.cache import cache_dir

    folder = cache_dir("hashes")
    return None if folder is None else folder / "index.json"


def _load(index: Path | None) -> None:
    if index is None or str(index) in _LOADED:
        return
    _LOADED.add(str(index))
    try:
        stored = json.loads(index.read_text())
    except (OSError, ValueError):
        return  # no index yet, or a damaged one: hashes are recomputed
    for path, entry in stored.items() if isinstance(stored, dict) else ():
        if isinstance(entry, list) and len(entry) == 4 and path not in _MEMORY:
            _MEMORY[path] = (int(entry[0]), int(entry[1]), int(entry[2]), str(entry[3]))


def _save(index: Path | None) -> None:
    if index is None:
        return
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp = index.with_name(f"index.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({p: list(e) for p, e in _MEMORY.items()}))
        os.replace(tmp, index)  # atomic: ranks writing at once never leave half a file
    except OSError:
        pass  # a read-only cache only costs re-hashing next time


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path, *, save: bool = True) -> str:
    """SHA-256 of a file's bytes (hex), read again only when its size, mtime or inode changed.

    Returns ``"unreadable"`` for a file that cannot be read, so that a fingerprint still differs
    from that of the readable file (the loaders list such files; the crop step skips them).
    """
    return file_hashes([path], save=save)[0]


def file_hashes(paths: Iterable[str | Path], *, save: bool = True) -> list[str]:
    """`file_sha256` of each of ``paths``, in order; the on-disk index is written once at the end."""
    index = _index_file()
    _load(index)
    out, changed = [], False
    for given in paths:
        path = Path(given).absolute()
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            out.append("unreadable")
            continue
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = _MEMORY.get(key)
        if known is not None and known[:3] == stamp:
            out.append(known[3])
            continue
        try:
            sha = _hash(path)
        except OSError:
            out.append("unreadable")
            continue
        _MEMORY[key] = (*stamp, sha)
        changed = True
        out.append(sha)
    if changed and save:
        _save(index)
    return out


def forget() -> None:
    """Drop this process's memory of hashes (the on-disk index is read again on next use)."""
    _MEMORY.clear()
    _LOADED.clear()
