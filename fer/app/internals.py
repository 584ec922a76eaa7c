"""Every use of Gradio's private internals, in one module, so that a Gradio upgrade touches one file.

Written against the pinned ``gradio==6.31.0``; `tests/test_app_internals.py` checks that each of
these still does what it is used for, and `check_version` logs a warning under any other version.
"""

from __future__ import annotations

import logging
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

log = logging.getLogger("fer.app")

#: The Gradio release these internals were written and tested against.
PINNED_GRADIO = "6.31.0"


def check_version() -> bool:
    """True under the pinned Gradio; otherwise log a warning once and return False."""
    import gradio

    if gradio.__version__ == PINNED_GRADIO:
        return True
    log.warning("fer.app.internals was written for gradio %s, this is %s: re-run tests/test_app_internals.py",
                PINNED_GRADIO, gradio.__version__)
    return False


class _OneLineTracebacks(types.ModuleType):
    """A stand-in for the ``traceback`` module inside Gradio's request handling: the exception
    being handled is logged as one line; every other function is the real module's."""

    def __init__(self) -> None:
        super().__init__("traceback")

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    def print_exc(self, *args: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            message = str(exc).splitlines()[0][:200] if str(exc) else ""
            log.warning("request refused: %s%s", type(exc).__name__, f": {message}" if message else "")


def one_line_errors() -> None:
    """Make Gradio log a refused or failed request as one line instead of a traceback.

    Gradio prints the traceback of every exception an event raises (``traceback.print_exc`` in
    its queue and routes), a refused widget value included; the app's own handlers already log
    their failures once.
    """
    import gradio.queueing
    import gradio.routes
    import gradio.utils

    shim = _OneLineTracebacks()
    for module in (gradio.queueing, gradio.routes, gradio.utils):
        module.traceback = shim  # type: ignore[attr-defined]


def kept_in_cache(blocks: Any) -> set[str]:
    """Files Gradio keeps in its cache for every session (its copies of `gr.Examples` files)."""
    return {str(kept) for block in blocks.blocks.values() for kept in getattr(block, "keep_in_cache", ())}


def empty_cache(blocks: Any) -> None:
    """Delete every file Gradio cached for ``blocks`` (uploads and served files), now.

    Gradio does this in its server's shutdown hook, which never runs when a browser tab is still
    connected at Ctrl-C: the server waits for the tab's event stream and the process ends first.
    """
    from gradio.route_utils import delete_files_created_by_app

    delete_files_created_by_app(blocks, age=None)


def forget_shown(state_holder: Any) -> int:
    """Drop the copies Gradio keeps, for every session, of widget values that carry data inline
    (base64 ``data:`` URLs: pictures, webcam frames, downloads); returns how many.

    Gradio keeps each session's last value of every widget (``SessionState.config_values``) only
    to serve deep links, which the app refuses; left alone, these copies would keep the last
    pictures shown to each session in memory until Gradio evicts the session.
    """
    dropped = 0
    for session in list(state_holder.session_data.values()):
        for config in list(session.config_values.values()):
            props = config.get("props") if isinstance(config, dict) else None
            if props and carries_inline(props.get("value")):
                props["value"] = None
                dropped += 1
    return dropped


def carries_inline(value: Any) -> bool:
    """Whether a widget value holds a base64 ``data:`` URL anywhere (an HTML panel embeds them)."""
    if isinstance(value, str):
        return ";base64," in value
    if isinstance(value, dict):
        return any(carries_inline(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(carries_inline(v) for v in value)
    return False


def sessions_held(state_holder: Any) -> int:
    """How many sessions Gradio holds state for now."""
    return len(state_holder.session_data)


def evict_anonymous_first(state_holder: Any, anonymous: Callable[[str], bool]) -> None:
    """When Gradio's session store is full, evict the least recently used session for which
    ``anonymous(session_hash)`` holds, and only when there is none the least recently used of all.

    Gradio's ``StateHolder.update`` evicts the least recently used session whatever it is, so a
    client opening sessions faster than visitors use theirs (each API call is a session) would
    push visitors' settings out; ``update`` is replaced on this one instance, same locking.
    """

    def update(session_id: str) -> None:
        with state_holder.lock:
            sessions = state_holder.session_data
            if session_id in sessions:
                sessions.move_to_end(session_id)
            while len(sessions) > state_holder.capacity:
                victim = next((s for s in sessions if s != session_id and anonymous(s)), None)
                if victim is None:
                    victim = next(iter(sessions))
                sessions.pop(victim)
                state_holder.time_last_used.pop(victim, None)

    state_holder.update = update
