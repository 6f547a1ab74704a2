"""Errors that are the user's to fix (a bad path, an unknown name, a malformed file).

Commands and the experiment print a :class:`UserError` as one line and exit non-zero; any other
exception is a bug and keeps its traceback.  ``--debug`` (or ``CODEIT_DEBUG=1``) shows the
traceback of a user error too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

__all__ = ["DEBUG_ENV", "UserError", "debug_enabled"]

DEBUG_ENV = "CODEIT_DEBUG"


class UserError(Exception):
    """Something the user asked for cannot be done as asked; the message says what and how to fix it."""


def debug_enabled() -> bool:
    """Whether full tracebacks were asked for (``CODEIT_DEBUG`` set to anything but ``0``/empty)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a misspelt ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""
