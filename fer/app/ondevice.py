"""The on-device engine's files, served by the app itself under `PREFIX` (no CDN: the Space and the
tests are offline).

Only the files listed in ``fer/app/static/ondevice/MANIFEST.json`` (written by
``scripts/export_ondevice.py``) are served; the vendored runtime and the models are checked against
their SHA-256 when the app starts; the WebAssembly runtime is stored and sent gzip-compressed
(``Content-Encoding: gzip``: 3.7 MB instead of 14.2 MB on a first visit), and every answer carries
an ``ETag`` so that a browser's later visits revalidate instead of downloading again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("fer.app")

#: URL prefix of the engine's files.
PREFIX = "/ondevice/"
#: Their folder, and the manifest that lists them.
ROOT = Path(__file__).resolve().parent / "static" / "ondevice"
MANIFEST = ROOT / "MANIFEST.json"
#: A day fresh, then revalidated by ETag (a new release changes the files' hashes).
CACHE_CONTROL = b"public, max-age=86400"
TYPES = {".mjs": "text/javascript; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".json": "application/json", ".onnx": "application/octet-stream", ".wasm": "application/wasm"}


@dataclass(frozen=True)
class Asset:
    """One served file: its body as stored, whether that is gzip, its type and ETag."""

    body: bytes
    gzipped: bool
    content_type: str
    etag: bytes


def load_assets(manifest: Path = MANIFEST) -> dict[str, Asset]:
    """URL path (below `PREFIX`) → `Asset`, for every file the manifest lists, verified.

    Entries with a ``sha256`` (third-party and generated files) must match it; the engine's own
    scripts are listed without one. A file listed as ``NAME.gz`` is served as ``NAME`` with ``Content-Encoding: gzip``.

    Raises:
        RuntimeError: a listed file is missing or its SHA-256 differs from the manifest's.
    """
    listed = json.loads(manifest.read_text())["files"]
    assets = {}
    for name, entry in listed.items():
        path = (manifest.parent / name).resolve()
        if manifest.parent.resolve() not in path.parents or not path.is_file():
            raise RuntimeError(f"on-device file {name} is missing")
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        if "sha256" in entry and digest != entry["sha256"]:
            raise RuntimeError(f"on-device file {name} does not match its SHA-256 in {manifest.name}")
        served = name[:-3] if name.endswith(".gz") else name
        assets[served] = Asset(body, name.endswith(".gz"), TYPES.get(Path(served).suffix, "application/octet-stream"),
                               f'"{digest[:32]}"'.encode())
    return assets


class OnDeviceFiles:
    """ASGI middleware: ``GET``/``HEAD`` of `PREFIX` + a listed file answers it; anything else under
    `PREFIX` is 404; every other path goes on to the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.assets = load_assets()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        asset = self.assets.get(path[len(PREFIX):])
        if asset is None or scope.get("method") not in ("GET", "HEAD"):
            await _answer(send, 404, [(b"content-type", b"text/plain; charset=utf-8")], b"Not Found")
            return
        headers = dict(scope.get("headers") or [])
        common = [(b"etag", asset.etag), (b"cache-control", CACHE_CONTROL), (b"vary", b"accept-encoding")]
        if headers.get(b"if-none-match") == asset.etag:
            await _answer(send, 304, common, b"")
            return
        body, encoding = asset.body, []
        if asset.gzipped:
            if b"gzip" in headers.get(b"accept-encoding", b""):
                encoding = [(b"content-encoding", b"gzip")]
            else:
                body = gzip.decompress(body)
        await _answer(send, 200, [(b"content-type", asset.content_type.encode()), *encoding, *common],
                      b"" if scope.get("method") == "HEAD" else body, len(body))


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                  length: int | None = None) -> None:
    size = len(body) if length is None else length
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(size).encode())]})
    await send({"type": "http.response.body", "body": body})
