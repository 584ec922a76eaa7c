"""Exceptions raised by `fer`. Every message is one line a user can act on."""

from __future__ import annotations


class FerError(Exception):
    """Base class for every error `fer` raises on purpose."""


class InputError(FerError, ValueError):
    """An input (image, array, file, archive) was refused; the message names it and says why."""


class WeightsError(FerError):
    """A weights file is missing, tampered with, or in a refused format."""
