"""Every weights file the library knows, and the one resolver that finds them.

`REGISTRY` names each one (face detectors, expression CNNs, ensembles, ML-Net) with its kind, its
file and SHA-256 (a detector's) or its spec JSON (a CNN's or ML-Net's spec names its weights file
and that file's SHA-256). `resolve` finds a file: an existing path, the caller's folders, the shipped
weights (`WEIGHTS_DIR`), then the Hugging Face Hub repository ``FER_HF_REPO`` (or a spec's
``hf_repo``) through ``hf_hub_download``, which is never asked while ``HF_HUB_OFFLINE`` is set. Every
file is SHA-256 verified before use; tensors are read from safetensors only (never pickle). A file
found nowhere is one `WeightsError` naming the file, its expected hash and how to get it.

Importing this module does not import torch (``python -m fer --help`` stays fast).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from fer.errors import InputError, WeightsError

if TYPE_CHECKING:
    import torch

_PACKAGE = Path(__file__).resolve().parent

#: The shipped weights: ``fer/weights_data`` in an installed wheel (``weights/`` packaged by
#: pyproject.toml), else the repository's ``weights/`` beside the package.
WEIGHTS_DIR = next((d for d in (_PACKAGE / "weights_data", _PACKAGE.parent / "weights") if d.is_dir()),
                   _PACKAGE.parent / "weights")

Kind = Literal["detector", "expression", "ensemble", "saliency"]


@dataclass(frozen=True)
class Registered:
    """One named entry of `REGISTRY`.

    Attributes:
        name: the registry name (what `fer.load`, ``--model`` and the app take).
        kind: ``"detector"`` (a BlazeFace ``.tflite``), ``"expression"`` (a CNN), ``"ensemble"``
            (of expression CNNs) or ``"saliency"`` (ML-Net).
        weights: the weights file, for a detector; a spec's own ``weights`` field otherwise.
        sha256: that file's SHA-256, for a detector.
        spec: the spec JSON (a `fer.models.ModelSpec` or `fer.mlnet.SaliencySpec`, which names the
            weights file and its SHA-256), for a CNN or ML-Net; the `fer.blazeface.LAYOUTS` key, for a
            detector.
        members: an ensemble's member models, main member first.
        description: one line for lists and the UI.
        howto: how to get the file when it is missing.
    """

    name: str
    kind: Kind
    description: str
    howto: str
    weights: str = ""
    sha256: str = ""
    spec: str = ""
    members: tuple[str, ...] = ()


_CONVERTED = "it is shipped in weights/; regenerate it with scripts/{script} (weights/README.md)"

#: Every named weights entry.
REGISTRY: dict[str, Registered] = {entry.name: entry for entry in (
    Registered(
        "blazeface_short", "detector",
        "BlazeFace short range: faces within about 2 m of the camera (webcam, portraits); the faster one",
        "it is shipped in weights/, taken from the mediapipe 0.10.21 wheel on PyPI (weights/README.md)",
        weights="face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", spec="short"),
    Registered(
        "blazeface_full", "detector",
        "BlazeFace full range (sparse): smaller and farther faces, group photos; slower",
        "it is shipped in weights/, taken from the mediapipe 0.10.21 wheel on PyPI (weights/README.md)",
        weights="face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", spec="full"),
    Registered(
        "mini_xception_fer2013", "expression", "mini-Xception trained on FER2013 (the default)",
        _CONVERTED.format(script="convert_mini_xception.py"), spec="mini_xception_fer2013.json"),
    Registered(
        "face_api_expression", "expression", "face-api's expression CNN (FaceExpressionNet)",
        _CONVERTED.format(script="convert_face_api.py"), spec="face_api_expression.json"),
    Registered(
        "ensemble", "ensemble", "mean of mini-Xception's and face-api's probabilities",
        "it needs its members' weights", members=("mini_xception_fer2013", "face_api_expression")),
    Registered(
        "mlnet", "saliency", "ML-Net (Cornia et al. 2016), the saliency CNN the paper used",
        "no trained ML-Net is shipped: train one on SALICON or MIT1003 with `python -m fer train-saliency "
        "--images DIR --maps DIR --out DIR` and pass it (FER_MLNET_WEIGHTS=DIR or weights=PATH), or put "
        "mlnet.json and its .safetensors in weights/ or in the Hub repo FER_HF_REPO", spec="mlnet.json"),
)}

#: Short names for registry entries.
ALIASES: dict[str, str] = {"default": "mini_xception_fer2013"}

#: The detector models by the faces they are for (`fer.face.FaceDetector`'s ``model``) → registry name.
DETECTORS: dict[str, str] = {"short": "blazeface_short", "full": "blazeface_full"}


def registered(name: str) -> Registered:
    """The `REGISTRY` entry of ``name`` (aliases allowed).

    Raises:
        InputError: no such entry (the message lists the known names).
    """
    try:
        return REGISTRY[ALIASES.get(name, name)]
    except KeyError:
        raise InputError(f"no registered weights named {name!r}; known: {', '.join([*ALIASES, *REGISTRY])}") from None


def names(kind: Kind) -> list[str]:
    """Registry names of one kind, in registry order."""
    return [name for name, entry in REGISTRY.items() if entry.kind == kind]


def hub_repo(override: str | None = None) -> str | None:
    """The Hugging Face Hub repository to fall back on: ``override`` (a spec's ``hf_repo``), else
    ``FER_HF_REPO`` (read now), else None."""
    return override or os.environ.get("FER_HF_REPO") or None


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set now; read at call time, not at huggingface_hub's import, so
    that offline mode set later (by a test, a notebook) still means "no network"."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- specs


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


def spec_file(name: str) -> Path:
    """The spec JSON of a registered CNN or ML-Net: the shipped weights folder, else the Hub
    repository ``FER_HF_REPO``.

    Raises:
        InputError: ``name`` is not registered, or its entry has no spec file (a detector, an ensemble).
        WeightsError: the spec is found nowhere (the message says how to get it).
    """
    entry = registered(name)
    if entry.kind not in ("expression", "saliency"):
        raise InputError(f"{entry.name!r} is a registered {entry.kind}: it has no spec file of its own")
    found, hub_note = _locate(entry.spec, search_dirs=(), hf_repo=None)
    if found is None:
        raise WeightsError(f"spec file {entry.spec!r} of {entry.name!r} not found in {WEIGHTS_DIR}{hub_note}; "
                           f"{entry.howto}")
    return found


def local_spec(name: str) -> Path | None:
    """``name``'s spec file if it is here without asking the network (shipped, or in the Hub's local
    cache of ``FER_HF_REPO``), else None."""
    entry = registered(name)
    if (WEIGHTS_DIR / entry.spec).is_file():
        return WEIGHTS_DIR / entry.spec
    repo = hub_repo()
    cached = _hub_cached(repo, entry.spec) if repo else None
    return Path(cached) if isinstance(cached, str) else None


# --------------------------------------------------------------------------- files


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
    howto: str = "put the file there, or set FER_HF_REPO to a Hub repo that holds it",
) -> Path:
    """Find a weights file and verify it.

    Looks in: ``filename`` itself if it is an absolute path, each of ``search_dirs``, `WEIGHTS_DIR`,
    then the Hub repository ``hf_repo`` (else ``FER_HF_REPO``): downloaded unless ``HF_HUB_OFFLINE``
    is set, when only the Hub's local cache is read.

    Returns:
        Path of the verified local file.
    Raises:
        WeightsError: not found anywhere (naming the file, its SHA-256 and ``howto``), or found with
            the wrong SHA-256.
    """
    found, hub_note = _locate(filename, search_dirs, hf_repo)
    if found is None:
        raise WeightsError(f"weights file {filename!r} (SHA-256 {sha256}) not found in {WEIGHTS_DIR}{hub_note}; {howto}")
    return verify(found, sha256)


def resolve_registered(name: str) -> Path:
    """The verified weights file of a registered detector (see `resolve`)."""
    entry = registered(name)
    if entry.kind != "detector":
        raise InputError(f"{entry.name!r} is a registered {entry.kind}: load it with fer.models or fer.saliency")
    return resolve(entry.weights, entry.sha256, howto=entry.howto)


def _locate(filename: str, search_dirs: Iterable[str | Path], hf_repo: str | None) -> tuple[Path | None, str]:
    """``(path, "")`` of the first local or Hub copy of ``filename``, else ``(None, what the Hub said)``."""
    candidates = [Path(filename)] if Path(filename).is_absolute() else []
    candidates += [Path(d) / filename for d in search_dirs] + [WEIGHTS_DIR / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, ""
    repo = hub_repo(hf_repo)
    if not repo:
        return None, ""
    if hub_offline():
        cached = _hub_cached(repo, Path(filename).name)
        if isinstance(cached, str):
            return Path(cached), ""
        return None, f"; Hugging Face Hub repo {repo!r} not asked (HF_HUB_OFFLINE is set) and not in its cache"
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=Path(filename).name)), ""
    except Exception as exc:  # noqa: BLE001 - network, missing file: all end in the same advice
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, f"; Hugging Face Hub repo {repo!r} failed: {type(exc).__name__}: {first}"


def _hub_cached(repo: str, filename: str) -> object:
    from huggingface_hub import try_to_load_from_cache

    return try_to_load_from_cache(repo_id=repo, filename=filename)


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
