"""Exceptions raised by `fer`. Every message is one line a user can act on."""

from __future__ import annotations


class FerError(Exception):
    """Base class for every error `fer` raises on purpose."""


class InputError(FerError, ValueError):
    """An input (image, array, file, archive) was refused; the message names it and says why."""


class WeightsError(FerError):
    """A weights file is missing, tampered with, or in a refused format."""


class JobTimeout(InputError):
    """A long job (a clip, an evaluation) ran past the wall-clock limit its caller set."""

    def __init__(self, message: str = "stopped: this takes longer than this server allows") -> None:
        super().__init__(message)


def check_deadline(deadline: float | None, message: str | None = None) -> None:
    """Raise `JobTimeout` (with ``message``, else its default) once ``time.monotonic()`` is past
    ``deadline`` (None: no limit)."""
    import time

    if deadline is not None and time.monotonic() > deadline:
        raise JobTimeout() if message is None else JobTimeout(message)
