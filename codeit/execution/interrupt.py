"""Interrupting runaway program code: one ``SIGALRM`` mechanism for every evaluator.

A DSL line can run for a long time in pure Python (a primitive mapped over a huge container); the
only way to stop it without killing the process is an exception raised from a signal handler.
:func:`guard` installs the handler (:func:`on_tick`) and a periodic timer; the evaluators say what
is watched, in :data:`WATCH`:

- ``WATCH[LINE]``: the start time of the line being computed (the shared evaluator's per-line
  ``line_timeout``), and while a line is watched, this process's resident memory (the guard's
  ``memory_mb`` above its size on entry);
- ``WATCH[DEADLINE]``: when a program's time on one input is up (the executor's ``timeout``).

Past either, the next tick raises :class:`ProgramInterrupt` -- but only in this package's frames
(:func:`in_program_code`), never in a finaliser or a garbage-collector callback that would swallow
it.  The watched times are cleared by the code that catches the exception, never by the handler, so
a tick that could not raise is followed, one tick later, by one that does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits

__all__ = ["CEILING", "DEADLINE", "LINE", "LINE_LIMIT", "TICK", "WATCH", "ProgramInterrupt", "guard",
           "guard_process", "in_program_code", "on_tick"]


class ProgramInterrupt(BaseException):
    """Raised by the tick in program code that ran past its time (or memory); a BaseException so that
    no DSL code can swallow it."""


#: Seconds between two ticks while a guard is active.
TICK = 0.02

#: What the tick checks, written by the evaluators (a list: one store per line, no call):
#: the watched line's start (``time.perf_counter()``, 0: none), the line limit, the resident-memory
#: ceiling in pages (0: none) and the current input's deadline (``time.perf_counter()``, 0: none).
WATCH = [0.0, DEFAULT_LIMITS.line_timeout, 0, 0.0]
LINE, LINE_LIMIT, CEILING, DEADLINE = range(4)

_active = [False]  # a guard is installed (guards nest as no-ops)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: the ``codeit`` package folder: DSL primitives, closures they build and the evaluation loops
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def in_program_code(frame: Any) -> bool:
    """Whether a signal handler's ``frame`` is this package's code (a DSL primitive, a closure it
    built, the evaluation loop) -- the only place an interrupt is raised.

    A signal can also land in a garbage-collector callback or a finaliser running at that moment
    (a weakref callback, a library's gc hook), where Python prints and swallows the exception; the
    tick skips those and interrupts again at its next tick, back in the program.  The DSL calls
    only builtins, so a running program is always in this package's frames -- but not under a
    finaliser (``__del__``; seen: the executor's own, at its first line), which swallows it too."""
    if frame is None or not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        return False
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return False
        frame = frame.f_back
    return True


def resident_pages() -> int:
    """Resident set size of this process in pages (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def on_tick(signum, frame) -> None:
    """The ``SIGALRM`` handler: raise :class:`ProgramInterrupt` in program code that is overdue."""
    deadline, start = WATCH[DEADLINE], WATCH[LINE]
    if not (deadline or start):
        return
    now = time.perf_counter()
    if ((deadline and now > deadline)
            or (start and (now - start > WATCH[LINE_LIMIT]
                           or (WATCH[CEILING] and resident_pages() > WATCH[CEILING])))) and in_program_code(frame):
        raise ProgramInterrupt


def _install(limits: ExecutionLimits, tick: float) -> Any:
    """Install the tick; returns the previous handler, or ``None`` where it cannot or need not be."""
    if _active[0] or threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGALRM, on_tick)
    WATCH[LINE_LIMIT] = limits.line_timeout
    WATCH[CEILING] = (resident_pages() + (limits.memory_mb << 20) // _PAGE) if limits.memory_mb else 0
    _active[0] = True
    signal.setitimer(signal.ITIMER_REAL, tick, tick)
    return previous


@contextlib.contextmanager
def guard(limits: ExecutionLimits = DEFAULT_LIMITS, tick: float = TICK) -> Iterator[None]:
    """While the block runs, interrupt watched code that is overdue (module docstring): a line
    longer than ``limits.line_timeout``, a line that grows this process's resident memory more than
    ``limits.memory_mb`` above its size on entry, an input past its deadline.

    A periodic ``SIGALRM`` every ``tick`` seconds reads :data:`WATCH`, so the cost per line is one
    store, not a system call.  This is what contains untrusted programs run in the calling process
    (mutators, random programs); worker processes also get a hard ``RLIMIT_AS``.  Outside the main
    thread, or inside another guard (whose limits then apply), it does nothing more.
    """
    previous = _install(limits, tick)
    try:
        yield
    finally:
        if previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            WATCH[LINE] = WATCH[DEADLINE] = 0.0
            WATCH[CEILING] = 0
            _active[0] = False


def guard_process(limits: ExecutionLimits = DEFAULT_LIMITS, tick: float = TICK) -> None:
    """:func:`guard` for the rest of this process's life (worker processes)."""
    _install(limits, tick)
