"""HTTP hardening of the app server, one ASGI middleware in front of Gradio:

- routes the app does not serve answer 404 (one log line each): Gradio's queue-less ``/run/*`` and
  ``/api/*`` (the queue is the only way in; ``Blocks.queue(api_open=False)`` says the same to
  Gradio), ``/call/*`` of any event that is not a public endpoint, and the routes listed in
  `REFUSED_ROUTES`;
- ``file=`` URLs are served only for local paths inside the upload folder (`file_allowed`), decided
  on the string before any disk or network access, so they can neither fetch a URL for a client
  nor tell by their timing which server paths exist;
- request bodies are bounded: an upload by ``Content-Length`` and by its number of files, every
  other request by `fer.limits.MAX_REQUEST_BYTES`, counted as the bytes arrive (413 past them);
- a session hash only works from the browser it was first used by (`fer.app.owners`);
- an event whose file records name a URL or a non-upload inside the upload folder is refused
  before Gradio sees it (`fer.app.uploads.harmful_record_path`: Gradio would download the one and
  cache the other);
- security headers on every response; a client that goes away mid-request is one log line.

Framing is allowed for the app's own pages and for the Hugging Face Hub, which shows a Space inside
a frame on its pages (``FER_FRAME_ANCESTORS`` replaces that list); every other site is refused by
``Content-Security-Policy: frame-ancestors``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any
from urllib.parse import unquote

from starlette.requests import ClientDisconnect

from fer.app import owners
from fer.app.uploads import harmful_record_path, is_url_like
from fer.limits import MAX_REQUEST_BYTES, MAX_UPLOAD_FILES, MAX_UPLOAD_REQUEST_BYTES

log = logging.getLogger("fer.app")

#: Who may show the app in a frame: itself and the Hugging Face Hub (Spaces).
FRAME_ANCESTORS = "'self' https://huggingface.co https://*.huggingface.co https://*.hf.space"

_PREFIX = r"^(?:/gradio_api)?"

#: Gradio routes the app never uses, refused whatever their method: the queue-less event routes
#: (``/run/``, ``/api/``: they skip the queue and its limits), deep links (they write a session's
#: widget values to disk), the dev-mode reload stream, screen-recording conversion (it leaves its
#: input and output files in the temp folder), the monitoring dashboard (it prints its key to the
#: log), profiling, run history, the AI-editing ("vibe") routes, the proxy for apps loaded from
#: elsewhere and custom-component assets.
REFUSED_ROUTES = re.compile(
    _PREFIX + r"/(?:(?:run|api|deep_link|dev/reload|process_recording|monitoring|profiling|run-history|runs"
    r"|vibe-code|vibe-edit|undo-vibe-edit|vibe-starter-queries|custom_component)(?:/|$)|proxy=)"
)
#: ``/call/<name>`` (and ``/call/v2/<name>``): Gradio's queued calls by event name.
CALL_ROUTE = re.compile(_PREFIX + r"/call/(?:v2/)?([^/]+)")
#: ``file=<path>`` and the older ``file/<path>``.
FILE_ROUTE = re.compile(_PREFIX + r"/file(?:=|/)(.*)", re.DOTALL)
UPLOAD_ROUTE = re.compile(_PREFIX + r"/upload/?$")


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers added to every response."""
    ancestors = os.environ.get("FER_FRAME_ANCESTORS", FRAME_ANCESTORS)
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", f"frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'".encode()),
        (b"referrer-policy", b"same-origin"),
    ]


def file_allowed(requested: str, folders: Collection[str]) -> bool:
    """Whether a ``file=`` request names a local path inside one of ``folders``.

    A string check only (no disk access): URLs (anything with a scheme), relative paths, NUL
    bytes and ``..`` that climbs out are refused; a link inside a folder is refused later by
    Gradio's own checks. ``requested`` is the URL path after ``file=``, percent-decoded once more
    (a client may encode it twice).
    """
    path = unquote(requested)
    if not path.startswith("/") or is_url_like(path):
        return False
    normal = os.path.normpath(path)
    return any(normal.startswith(os.path.normpath(folder) + os.sep) for folder in folders)


class _TooLarge(Exception):
    """A request body went past its limit while arriving."""


class Hardening:
    """ASGI middleware: see the module docstring.

    Args:
        app: the ASGI app behind it.
        public: names of the events callable as ``/call/<name>`` (the named API endpoints).
        file_folders: called per request, the folders whose files ``file=`` may serve.
    """

    def __init__(self, app: Any, public: Collection[str] = (), file_folders: Callable[[], Collection[str]] = tuple) -> None:
        self.app = app
        self.public = frozenset(public)
        self.file_folders = file_folders
        self.headers = security_headers()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "?")
        reason = self._refusal(path)
        if reason:
            log.info("refused %s %s (%s)", method, path[:120], reason)
            await self._answer(send, 404, b"Not Found")
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        cookie = owners.cookie_of(headers.get(b"cookie", b""))
        if not owners.OWNERS.check_path(scope, cookie):
            log.info("refused %s %s (session of another browser)", method, path[:120])
            await self._answer(send, 404, b"Not Found")
            return
        limit, max_parts = self._body_limit(path)
        declared = headers.get(b"content-length")
        if method == "POST" and declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = True
            if too_large:
                log.info("refused %s %s (body of %s bytes, over %d)", method, path[:120], declared[:20].decode(
                    "latin-1"), limit)
                await self._answer(send, 413, b"Request too large")
                return
        boundary = _boundary(headers.get(b"content-type", b"")) if max_parts else None
        counted = _BodyCounter(limit, boundary, max_parts)
        set_cookie = owners.set_cookie_header(scope, headers) if cookie is None else None
        started = False

        async def counted_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                counted.add(message.get("body", b""))
            return message

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in names]
                if set_cookie is not None:
                    extra.append((b"set-cookie", set_cookie))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            downstream = counted_receive
            if method == "POST" and (owners.names_session_in_body(path) or CALL_ROUTE.match(path)):
                # Event requests: their JSON body names the session and any file records; read it
                # (bounded) before Gradio does.
                body, more = b"", True
                while more:
                    message = await counted_receive()
                    if message["type"] != "http.request":
                        raise ClientDisconnect()
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                why = self._body_refusal(body, cookie)
                if why:
                    log.info("refused %s %s (%s)", method, path[:120], why)
                    await self._answer(send, 404, b"Not Found")
                    return
                downstream = _replay(body, receive)
            await self.app(scope, downstream, send_with_headers)
        except _TooLarge as exc:
            log.info("refused %s %s (%s)", method, path[:120], exc)
            if not started:
                await self._answer(send, 413, b"Request too large")
        except ClientDisconnect:
            # A client that went away mid-request (a torn upload): nothing to answer, one log line
            # instead of the server's traceback. What it sent is swept (`fer.app.folders`).
            log.info("client went away during %s %s", method, path[:120])

    def _refusal(self, path: str) -> str:
        """Why ``path`` is not served, or ``""``."""
        if REFUSED_ROUTES.match(path):
            return "route not served"
        call = CALL_ROUTE.match(path)
        if call and call.group(1) not in self.public:
            return "not a public endpoint"
        file = FILE_ROUTE.match(path)
        if file and not file_allowed(file.group(1), self.file_folders()):
            return "file outside the upload folder"
        return ""

    @staticmethod
    def _body_refusal(body: bytes, cookie: str | None) -> str:
        """Why an event request's body is refused, or ``""`` (unreadable JSON: Gradio answers it)."""
        import orjson

        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ""
        if not owners.OWNERS.check_body(data, cookie):
            return "session of another browser"
        if any(harmful_record_path(p) for p in _record_paths(data)):
            return "file record naming no upload"
        return ""

    @staticmethod
    def _body_limit(path: str) -> tuple[int, int]:
        """``(bytes, files)`` a request body to ``path`` may hold (files 0: not an upload)."""
        if UPLOAD_ROUTE.match(path):
            return MAX_UPLOAD_REQUEST_BYTES, MAX_UPLOAD_FILES
        return MAX_REQUEST_BYTES, 0

    async def _answer(self, send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *self.headers]})
        await send({"type": "http.response.body", "body": body})


def _record_paths(value: Any, depth: int = 0) -> Iterator[Any]:
    """The ``path`` of every file record (a dict with one) in a parsed JSON body."""
    if depth > 32:
        return
    if isinstance(value, dict):
        if "path" in value:
            yield value["path"]
        for item in value.values():
            yield from _record_paths(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _record_paths(item, depth + 1)


def _replay(body: bytes, receive: Any) -> Callable[[], Any]:
    """A ``receive`` that hands over ``body`` (already read) once, then the client's own messages."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _boundary(content_type: bytes) -> bytes | None:
    """The multipart boundary of a ``Content-Type`` header, or None."""
    match = re.search(rb'boundary="?([^";,\s]+)', content_type)
    return match.group(1) if match else None


class _BodyCounter:
    """Counts a body's bytes, and its multipart parts when a boundary is given, as chunks arrive;
    raises `_TooLarge` past the limits."""

    def __init__(self, limit: int, boundary: bytes | None, max_parts: int) -> None:
        self.limit = limit
        self.delimiter = b"--" + boundary if boundary else None
        self.max_parts = max_parts
        self.received = 0
        self.delimiters = 0
        self._tail = b""

    def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise _TooLarge(f"body over {self.limit} bytes")
        if self.delimiter is None:
            return
        # A delimiter may straddle two chunks: search the end of the last one too.
        window = self._tail + chunk
        self.delimiters += window.count(self.delimiter) - self._tail.count(self.delimiter)
        self._tail = window[-(len(self.delimiter) - 1):]
        # n files are n opening delimiters plus the closing one.
        if self.delimiters > self.max_parts + 1:
            raise _TooLarge(f"more than {self.max_parts} file(s) in one upload")
