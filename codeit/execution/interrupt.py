"""Interrupting a runaway program: a ``SIGALRM`` raised only inside program code.

A program line can run for a long time in pure Python (a DSL primitive mapped over a huge
container); the only way to stop it without killing the process is an exception raised from a
signal handler.  Such an exception is raised only in this package's frames, never in a finaliser or
a garbage-collector callback that would swallow it (:func:`in_program_code`).
"""

from __future__ import annotations

import os
import signal
from typing import Any

__all__ = ["ProgramInterrupt", "in_program_code"]


class ProgramInterrupt(BaseException):
    """Raised by the SIGALRM handler; a BaseException so that no DSL code can swallow it."""


_armed = False
#: the ``codeit`` package folder: DSL primitives, closures they build and the evaluation loops
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def in_program_code(frame: Any) -> bool:
    """Whether a signal handler's ``frame`` is this package's code (a DSL primitive, a closure it
    built, the evaluation loop) -- the only place an interrupt is raised.

    A signal can also land in a garbage-collector callback or a finaliser running at that moment
    (a weakref callback, a library's gc hook), where Python prints and swallows the exception; the
    handlers skip those and interrupt again at their next tick, back in the program.  The DSL calls
    only builtins, so a running program is always in this package's frames -- but not under a
    finaliser (``__del__``; seen: the executor's own, at its first line), which swallows it too."""
    if frame is None or not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        return False
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return False
        frame = frame.f_back
    return True



def on_alarm(signum, frame) -> None:
    """The SIGALRM handler of :func:`armed`: raise :class:`ProgramInterrupt` in program code."""
    if _armed and in_program_code(frame):
        raise ProgramInterrupt


class armed:
    """While the block runs, a SIGALRM (handler :func:`on_alarm` installed by the caller) interrupts
    it after ``timeout`` seconds; repeating every 50 ms, so an interrupt that lands in code that
    swallows it (a finaliser, a gc callback) fires again until the block is left."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __enter__(self) -> None:
        global _armed
        _armed = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout, 0.05)

    def __exit__(self, *exc_info) -> None:
        global _armed
        _armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
