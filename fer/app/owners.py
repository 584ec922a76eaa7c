"""A session hash works only from the browser that first used it.

Gradio names a browser tab's session by a hash the page makes up; it travels in URLs
(``/queue/data?session_hash=…``, ``/heartbeat/<hash>``) and so in proxy logs. Whoever holds it
could read that tab's results stream, run its events on its pictures and state, or close it.
So the app gives every browser a random cookie (`COOKIE`, HttpOnly: page scripts never see it)
and binds each session hash, at its first use, to the cookie that came with it; a request naming a
bound hash with another cookie, or none, is refused (404) by `fer.app.security.Hardening`. A hash
first used without a cookie (an API client; a browser that refuses the cookie) is bound to none,
and such sessions get no protection: the API endpoints keep nothing, and a browser that refuses
cookies is served as before.

On HTTPS (a Hugging Face Space shows the app inside a frame of another site) the cookie is
``SameSite=None; Secure; Partitioned``, which browsers keep for a framed site; on plain HTTP
(local use) ``SameSite=Lax``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

#: The browser's cookie.
COOKIE = "fer_browser"
#: Session hashes remembered (the oldest first forgotten): far more than Gradio keeps state for.
MAX_BOUND = 100_000
#: Sessions one browser (cookie) opens that count as its own tabs; more are treated like sessions
#: of no browser when Gradio's session store is full (`anonymous`).
MAX_TABS_PER_BROWSER = 8

_COOKIE_VALUE = re.compile(rb"(?:^|;)\s*" + COOKIE.encode() + rb"=([0-9a-f]{32})(?:;|$)")
#: Routes that name a session in their path: the heartbeat, and the media streams' playlists and
#: segments (``/stream/<hash>/<run>/<component>/…``; ``/stream/<event id>`` names an event, and its
#: session is in its body).
_HASH_IN_PATH = re.compile(r"^(?:/gradio_api)?/(?:heartbeat/([^/]+)|stream/([^/]+)/[^/]+/[^/]+)")
_HASH_IN_BODY = re.compile(r"^(?:/gradio_api)?/(?:queue/join|cancel|stream/[^/]+(?:/close)?)/?$")


def cookie_of(header: bytes) -> str | None:
    """The app's cookie in a ``Cookie`` header, or None."""
    match = _COOKIE_VALUE.search(header)
    return match.group(1).decode() if match else None


def set_cookie_header(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bytes:
    """A ``Set-Cookie`` value giving this browser a new random cookie."""
    secure = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto", b"").split(b",")[0].strip() == b"https"
    flags = "Secure; SameSite=None; Partitioned" if secure else "SameSite=Lax"
    return f"{COOKIE}={secrets.token_hex(16)}; Path=/; HttpOnly; {flags}".encode()


def session_in_path(scope: dict[str, Any]) -> str | None:
    """The session hash a request names in its path or query string, or None."""
    match = _HASH_IN_PATH.match(scope.get("path", ""))
    if match:
        return match.group(1) or match.group(2)
    query = scope.get("query_string", b"")
    if b"session_hash" in query:
        values = parse_qs(query.decode("latin-1")).get("session_hash")
        return values[0] if values else None
    return None


def names_session_in_body(path: str) -> bool:
    """Whether requests to ``path`` name their session in a JSON body (the queue's routes)."""
    return bool(_HASH_IN_BODY.match(path))


class Owners:
    """Session hash → the cookie it is bound to and which of that browser's sessions it is (0 for
    its first); thread-safe, bounded."""

    def __init__(self, capacity: int = MAX_BOUND) -> None:
        self.capacity = capacity
        self._bound: OrderedDict[str, tuple[str | None, int]] = OrderedDict()
        self._tabs: dict[str, int] = {}  # cookie → sessions bound to it now
        self._lock = threading.Lock()

    def check(self, session: str | None, cookie: str | None) -> bool:
        """Whether a request naming ``session`` with ``cookie`` may go on; binds an unseen hash."""
        if not session:
            return True
        with self._lock:
            if session not in self._bound:
                rank = 0 if cookie is None else self._tabs.get(cookie, 0)
                self._bound[session] = (cookie, rank)
                if cookie is not None:
                    self._tabs[cookie] = rank + 1
                if len(self._bound) > self.capacity:
                    _, (old_cookie, _) = self._bound.popitem(last=False)
                    if old_cookie is not None:
                        self._tabs[old_cookie] -= 1
                        if not self._tabs[old_cookie]:
                            del self._tabs[old_cookie]
                return True
            self._bound.move_to_end(session)
            owner = self._bound[session][0]
        return owner is None or owner == cookie

    def check_path(self, scope: dict[str, Any], cookie: str | None) -> bool:
        """`check` for the session a request names in its path or query (bodies: `check_body`)."""
        return self.check(session_in_path(scope), cookie)

    def check_body(self, body: Any, cookie: str | None) -> bool:
        """`check` for the session named in a queue request's parsed JSON body."""
        session = body.get("session_hash") if isinstance(body, dict) else None
        return self.check(session if isinstance(session, str) else None, cookie)

    def anonymous(self, session: str) -> bool:
        """Whether ``session`` is not a browser tab's: never seen, first used without a cookie
        (an API client), or past its browser's first `MAX_TABS_PER_BROWSER` sessions. Such
        sessions are the first to go when Gradio's session store is full
        (`fer.app.internals.evict_anonymous_first`), so calls that keep nothing cannot push a
        visitor's settings out."""
        with self._lock:
            cookie, rank = self._bound.get(session, (None, 0))
        return cookie is None or rank >= MAX_TABS_PER_BROWSER

    def __len__(self) -> int:
        with self._lock:
            return len(self._bound)


#: The app's bindings.
OWNERS = Owners()
