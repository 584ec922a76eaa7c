"""HTTP hardening of the app server: security headers on every response, Gradio routes the app
does not use answered 404 (with one log line each), and a client that goes away mid-request logged
as one line.

Framing is allowed for the app's own pages and for the Hugging Face Hub, which shows a Space inside
a frame on its pages (``FER_FRAME_ANCESTORS`` replaces that list); every other site is refused by
``Content-Security-Policy: frame-ancestors``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from starlette.requests import ClientDisconnect

log = logging.getLogger("fer.app")

#: Who may show the app in a frame: itself and the Hugging Face Hub (Spaces).
FRAME_ANCESTORS = "'self' https://huggingface.co https://*.huggingface.co https://*.hf.space"

#: Gradio routes the app never uses, refused whatever their method: deep links (they write a
#: session's widget values to disk), the dev-mode reload stream, screen-recording conversion (it
#: leaves its input and output files in the temp folder), the monitoring dashboard (it prints its
#: key to the log), profiling, run history, the AI-editing ("vibe") routes, the proxy for apps
#: loaded from elsewhere and custom-component assets.
REFUSED_ROUTES = re.compile(
    r"^(?:/gradio_api)?/(?:(?:deep_link|dev/reload|process_recording|monitoring|profiling|run-history|runs"
    r"|vibe-code|vibe-edit|undo-vibe-edit|vibe-starter-queries|custom_component)(?:/|$)|proxy=)"
)


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers added to every response."""
    ancestors = os.environ.get("FER_FRAME_ANCESTORS", FRAME_ANCESTORS)
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", f"frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'".encode()),
        (b"referrer-policy", b"same-origin"),
    ]


class Hardening:
    """ASGI middleware: `REFUSED_ROUTES` answered 404 (logged once each), `security_headers` on
    every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = security_headers()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if REFUSED_ROUTES.match(path):
            log.info("refused %s %s (route not served)", scope.get("method", "?"), path[:120])
            await self._not_found(send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in self.headers if k not in names]]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            # A client that went away mid-request (a torn upload): nothing to answer, one log line
            # instead of the server's traceback. What it sent is swept (`fer.app.folders`).
            log.info("client went away during %s %s", scope.get("method", "?"), path[:120])

    async def _not_found(self, send: Any) -> None:
        body = b"Not Found"
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *self.headers]})
        await send({"type": "http.response.body", "body": body})
