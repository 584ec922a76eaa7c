"""The shipped example pictures and clip (the app's examples, `fer bench`'s frames), from a wheel
or a checkout alike.

The repository's ``assets/`` travels inside the wheel as ``fer/assets_data`` (pyproject.toml), so
`ASSETS_DIR` is that folder once installed and ``assets/`` in a checkout; their sources and
licences are in its README.md.
"""

from __future__ import annotations

from pathlib import Path

from fer.errors import InputError

_PACKAGE = Path(__file__).resolve().parent

#: Where the shipped assets are: the installed package data first, else the checkout's ``assets/``.
ASSETS_DIR = next((d for d in (_PACKAGE / "assets_data", _PACKAGE.parent / "assets") if d.is_dir()),
                  _PACKAGE / "assets_data")


def asset(name: str) -> Path:
    """The shipped file ``name`` (e.g. ``"astronaut.png"``).

    Raises:
        InputError: no such file shipped (the message names the folder looked in).
    """
    path = ASSETS_DIR / name
    if not path.is_file():
        raise InputError(f"{name}: not among the shipped assets in {ASSETS_DIR}")
    return path
