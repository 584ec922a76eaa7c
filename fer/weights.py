"""The one weights resolver: file name → local folders (``weights/`` first) → Hugging Face Hub →
clear error. Every file is SHA-256 verified before use; tensors are read from safetensors only
(never pickle)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from fer.errors import WeightsError

#: Weights shipped with the repository.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

#: Fallback Hub repository for files not found locally (override with FER_HF_REPO).
DEFAULT_HF_REPO: str | None = os.environ.get("FER_HF_REPO") or None

_Spec = TypeVar("_Spec", bound="JsonSpec")


class JsonSpec:
    """JSON (de)serialisation shared by the frozen dataclasses saved beside weights files
    (`fer.models.ModelSpec`, `fer.mlnet.SaliencySpec`).

    Subclasses set ``KIND`` (named in error messages) and ``TUPLE_FIELDS`` (JSON lists turned back
    into tuples). Unknown keys are refused so that typos don't pass silently.
    """

    KIND: ClassVar[str] = "spec"
    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_Spec], data: Mapping[str, Any]) -> _Spec:
        """Build a spec from `to_dict` output."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise WeightsError(f"{cls.KIND} has unknown keys: {sorted(unknown)}")
        values = dict(data)
        for key in cls.TUPLE_FIELDS:
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise WeightsError(f"{cls.KIND} is incomplete: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the spec as indented JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls: type[_Spec], path: str | Path) -> _Spec:
        """Read a spec JSON file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"cannot read {cls.KIND} {path}: {exc}") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{path}: a {cls.KIND} must be a JSON object")
        return cls.from_dict(data)


_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")

# (path, size, mtime_ns) → sha256: a file is hashed once per process, not on every load.
_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (cached per path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def verify(path: str | Path, sha256: str) -> Path:
    """Check ``path`` has the expected SHA-256; raise `WeightsError` naming both hashes otherwise."""
    path = Path(path)
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise WeightsError(
            f"{path}: SHA-256 mismatch (expected {sha256}, got {actual}); the file is corrupt, "
            "truncated or not the published one — delete it and fetch it again"
        )
    return path


def resolve(
    filename: str,
    sha256: str,
    *,
    hf_repo: str | None = None,
    search_dirs: Iterable[str | Path] = (),
) -> Path:
    """Find a weights file and verify it.

    Looks in: ``filename`` itself if it is an existing path, each of ``search_dirs``, the shipped
    ``weights/`` folder, then the Hugging Face Hub repository ``hf_repo`` (or ``FER_HF_REPO``)
    through ``hf_hub_download``, which honours ``HF_HUB_OFFLINE=1``.

    Returns:
        Path of the verified local file.
    Raises:
        WeightsError: not found anywhere, or found with the wrong SHA-256.
    """
    candidates = [Path(filename)] if Path(filename).is_absolute() else []
    candidates += [Path(d) / filename for d in search_dirs] + [WEIGHTS_DIR / filename]
    for candidate in candidates:
        if candidate.is_file():
            return verify(candidate, sha256)
    repo = hf_repo or DEFAULT_HF_REPO
    hub_note = ""
    if repo and _hub_offline():
        # Read the environment now, not at huggingface_hub's import: offline mode set later (by a
        # test, a notebook) must still mean "no network", and a cached copy is still fine.
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id=repo, filename=Path(filename).name)
        if isinstance(cached, str):
            return verify(cached, sha256)
        hub_note = f"; Hugging Face Hub repo {repo!r} not asked (HF_HUB_OFFLINE is set) and not in its cache"
    elif repo:
        try:
            from huggingface_hub import hf_hub_download

            return verify(hf_hub_download(repo_id=repo, filename=Path(filename).name), sha256)
        except WeightsError:
            raise
        except Exception as exc:  # network, missing file: all end in the same advice
            hub_note = f"; Hugging Face Hub repo {repo!r} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise WeightsError(
        f"weights file {filename!r} (SHA-256 {sha256}) not found in {WEIGHTS_DIR}"
        f"{hub_note}; put the file there, or set FER_HF_REPO to a Hub repo that holds it"
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_state_dict(path: str | Path, sha256: str) -> dict[str, torch.Tensor]:
    """Read a verified ``.safetensors`` file into a CPU state dict.

    Pickle-based formats (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) are refused: loading them can run
    arbitrary code.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4)
    if path.suffix != ".safetensors" or head.startswith(_PICKLE_MAGIC):
        raise WeightsError(f"{path}: only .safetensors weights are accepted (pickle files can run code)")
    verify(path, sha256)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None
