"""What a browser session keeps between events, bounded for the whole server.

A session keeps at most one item per kind (the picture of the Image tab, the clip of the Video
tab): the upload's bytes, so that a settings change or a new sampling rate needs no new upload,
and what was computed from them. Items are keyed by Gradio's session hash; they go when the tab
closes (``Blocks.unload``), after `fer.limits.SESSION_TTL_S` without use, or, least recently used
first, when all sessions together would hold more than `fer.limits.SESSION_MEMORY_BYTES`. The
named API endpoints never keep anything here.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fer.limits import SESSION_MEMORY_BYTES, SESSION_TTL_S


@dataclass
class Kept:
    """One session's item of one kind.

    Attributes:
        data: the upload's bytes.
        name: the name the user gave it.
        extra: anything computed from it that is worth keeping (counted in `size` by its caller).
        size: bytes this item holds in memory (at least ``len(data)``).
    """

    data: bytes
    name: str
    extra: Any = None
    size: int = 0
    used: float = field(default=0.0, repr=False)


class SessionMemory:
    """Items of browser sessions, at most one per session and kind; thread-safe."""

    def __init__(self, budget_bytes: int = SESSION_MEMORY_BYTES, ttl_s: float = SESSION_TTL_S) -> None:
        self.budget_bytes = budget_bytes
        self.ttl_s = ttl_s
        self._items: OrderedDict[tuple[str, str], Kept] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: str | None, kind: str, item: Kept, now: float | None = None) -> bool:
        """Keep ``item`` for ``session``, replacing its previous item of ``kind``.

        Returns:
            False when nothing was kept: no session (an API call) or an item larger than the budget.
        """
        if not session:
            return False
        item.size = max(item.size, len(item.data))
        item.used = time.monotonic() if now is None else now
        with self._lock:
            self._items.pop((session, kind), None)
            if item.size > self.budget_bytes:
                return False
            self._items[(session, kind)] = item
            self._evict(item.used)
        return True

    def get(self, session: str | None, kind: str, now: float | None = None) -> Kept | None:
        """The session's item of ``kind`` (its age starts again), or None."""
        if not session:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            self._evict(now)
            item = self._items.get((session, kind))
            if item is not None:
                item.used = now
                self._items.move_to_end((session, kind))
            return item

    def drop(self, session: str | None, kind: str | None = None) -> None:
        """Forget a session's item of ``kind``, or all of its items (the tab closed)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == session and (kind is None or k[1] == kind)]:
                del self._items[key]

    def expire(self, now: float | None = None) -> None:
        """Forget items unused for longer than the TTL."""
        with self._lock:
            self._evict(time.monotonic() if now is None else now)

    @property
    def bytes(self) -> int:
        """Bytes held by all items."""
        with self._lock:
            return sum(item.size for item in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _evict(self, now: float) -> None:
        for key in [k for k, item in self._items.items() if now - item.used > self.ttl_s]:
            del self._items[key]
        total = sum(item.size for item in self._items.values())
        while total > self.budget_bytes and self._items:
            _, item = self._items.popitem(last=False)
            total -= item.size


#: The app's session memory.
MEMORY = SessionMemory()
