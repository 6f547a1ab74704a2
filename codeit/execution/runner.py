"""Run DSL programs on input grids, under the paper's limits, without ``eval`` or ``exec``.

A validated :class:`~codeit.program.Program` is *compiled* once into a list of steps that refer to
registry callables and to slots of an environment list (slot 0 is ``I``, then the constants and
primitives passed as values, then one slot per line); running it on an input is a loop over those
steps.  Program text is never evaluated as Python.

Limits (:class:`ExecutionLimits`, defaults are the paper's, dsl-spec §4.3–4.4):

- a line that runs longer than ``line_timeout`` (0.25 s) fails the program, checked after each line;
- a program gets ``timeout`` (1.0 s) per input in all; in worker processes a ``SIGALRM`` tick
  (:mod:`codeit.execution.interrupt`) interrupts runaway Python code at that point and a parent-side
  watchdog kills a worker stuck in C code;
- a value with ``len() >= max_elements`` (1,000) is not stored (the intermediate-size rule), so a
  later line that uses it fails — reported as ``limit: x3 dropped (…)``; ``0`` switches it off;
- each worker's address space is capped at ``memory_mb`` (``RLIMIT_AS``);
- an input or output grid of more than :data:`~codeit.execution.limits.MAX_GRID_CELLS` cells fails
  with ``limit:`` (it would cost more to move between processes than any program may run).

Failures are values, never exceptions: every input gets an output grid or ``None`` plus ``None`` or
a reason that starts with its kind — ``syntax:``, ``invalid input:``, ``error:``, ``timeout:``,
``limit:``, ``invalid output:`` or ``crashed:``.

:func:`run_program` runs in the calling process (trusted, fast paths and tests);
:class:`~codeit.execution.executor.BatchExecutor` runs many jobs across worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from codeit.dsl import CONSTANTS, PRIMITIVES
from codeit.execution.interrupt import DEADLINE, WATCH, ProgramInterrupt, guard
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits, ExecutionResult, oversize
from codeit.grids import Grid, check_grid
from codeit.program import INPUT, Program, ProgramError, parse

__all__ = ["CompileCache", "CompiledProgram", "clip", "compile_program", "run_inputs", "run_program"]


_SIZED = frozenset({tuple, frozenset, list, set, dict, str})
_MAX_REASON = 300


class CompiledProgram:
    """A program turned into steps over an environment list; build with :func:`compile_program`.

    Each step is ``(callee slot, argument getter, one argument?, target slot, needed later?)``.
    Primitives, constants and ``I`` live in slots too, so a step is two list lookups and a call.
    """

    __slots__ = ("_steps", "_template", "program", "texts")

    def __init__(self, program: Program) -> None:
        slots: dict[str, int] = {INPUT: 0}
        template: list[Any] = [None]

        def slot(name: str) -> int:
            if name not in slots:
                slots[name] = len(template)
                template.append(PRIMITIVES[name].function if name in PRIMITIVES else CONSTANTS[name])
            return slots[name]

        lines = program.lines
        last_use = {}
        for i, line in enumerate(lines):
            for name in (line.callee, *line.args):
                last_use[name] = i
        steps = []
        for i, line in enumerate(lines):
            callee = slot(line.callee)
            args = [slot(a) for a in line.args]
            target = slots[line.target] = len(template)
            template.append(None)
            needed = last_use.get(line.target, -1) > i or i == len(lines) - 1
            steps.append((callee, itemgetter(*args), len(args) == 1, target, needed))
        self.program = program
        self.texts = tuple(map(str, lines))
        self._template = template
        self._steps = tuple(steps)

    def run(self, grid: Grid, limits: ExecutionLimits = DEFAULT_LIMITS) -> tuple[Any, str | None]:
        """Run on one (already validated) grid: ``(value of O, None)`` or ``(None, reason)``.

        The value is returned whatever its type; checking that it is a grid is the caller's job.
        Time limits are checked after each line; interrupting a runaway line needs the guard's
        tick (:mod:`codeit.execution.interrupt`; workers and ``run_program(..., alarm=True)``).
        """
        env = self._template.copy()
        env[0] = grid
        max_elements = limits.max_elements
        line_limit, limit = limits.line_timeout, limits.timeout
        clock = time.perf_counter
        i = -1
        start = before = clock()
        try:
            for i, (callee, get, single, target, needed) in enumerate(self._steps):
                value = env[callee](get(env)) if single else env[callee](*get(env))
                now = clock()
                if now - before > line_limit or now - start > limit:
                    return None, self._slow(i, now - before, now - start, limits)
                before = now
                if max_elements and type(value) in _SIZED and len(value) >= max_elements:
                    if needed:
                        return None, self._dropped(i, len(value), max_elements)
                    continue
                env[target] = value
        except ProgramInterrupt:
            where = f" in {self.texts[i]!r}" if i >= 0 else ""
            return None, f"timeout: interrupted after {clock() - start:.2f} s{where} (limit {limit:g} s per input)"
        except Exception as exc:  # noqa: BLE001 - any DSL failure fails the program
            return None, clip(f"error: {self.texts[i]}: {type(exc).__name__}: {exc}")
        return value, None

    def _slow(self, i: int, line_time: float, total: float, limits: ExecutionLimits) -> str:
        if line_time > limits.line_timeout:
            return (f"timeout: {self.texts[i]!r} took {line_time:.2f} s "
                    f"(limit {limits.line_timeout:g} s per line)")
        return f"timeout: {total:.2f} s after {self.texts[i]!r} (limit {limits.timeout:g} s per input)"

    def _dropped(self, i: int, size: int, limit: int) -> str:
        target = self.program.lines[i].target
        tail = ": no output" if i == len(self._steps) - 1 else ""
        return f"limit: {target} dropped ({size:,} elements ≥ {limit:,}){tail}"


def clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


def compile_program(program: Program | str) -> CompiledProgram:
    """Compile a program (or program text, parsed first; may raise ProgramError)."""
    return CompiledProgram(parse(program) if isinstance(program, str) else program)


class CompileCache:
    """Compiled programs (or their syntax errors) by text; cleared wholesale when full."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.entries: dict[str, CompiledProgram | str] = {}

    def get(self, program: Program | str) -> CompiledProgram | str:
        key = program if isinstance(program, str) else program.text
        entry = self.entries.get(key)
        if entry is None:
            try:
                entry = compile_program(program)
            except ProgramError as exc:
                entry = f"syntax: {exc}"
            if len(self.entries) >= self.size:
                self.entries.clear()
            self.entries[key] = entry
        return entry


_CACHE = CompileCache()


def run_program(program: Program | str | CompiledProgram, inputs: Iterable[Any],
                limits: ExecutionLimits | None = None, *, alarm: bool = False,
                keep_values: bool = True) -> ExecutionResult:
    """Run ``program`` on each input grid in this process and return one result per input.

    Inputs may be tuples or lists (they are validated and converted).  Limits are checked after
    each line; with ``alarm=True`` (main thread only) the tick of
    :func:`codeit.execution.interrupt.guard` also interrupts a runaway line at ``limits.timeout`` --
    the previous SIGALRM handler is restored afterwards.  The memory cap is not applied here (it
    would cap the caller); use :class:`BatchExecutor` for untrusted programs.
    """
    limits = limits or DEFAULT_LIMITS
    compiled = program if isinstance(program, CompiledProgram) else _CACHE.get(program)
    inputs = list(inputs)
    if isinstance(compiled, str):
        n = len(inputs)
        return ExecutionResult((None,) * n, (compiled,) * n, (None,) * n if keep_values else None)
    if not alarm:
        return run_inputs(compiled, inputs, limits, False, keep_values)
    with guard(limits):
        return run_inputs(compiled, inputs, limits, True, keep_values)


def run_inputs(compiled: CompiledProgram, inputs: Sequence[Any], limits: ExecutionLimits,
               alarm: bool, keep_values: bool, before_run: Callable[[], None] | None = None) -> ExecutionResult:
    """The per-input loop shared by :func:`run_program` and the workers.

    With ``alarm`` each input gets a deadline ``limits.timeout`` away, enforced by an active guard's
    tick.  ``before_run`` is called once an input is validated, just before the program runs on it
    (a worker's beat: the watchdog's clock then starts with the program, not with the transfer).
    """
    outputs, errors, values = [], [], []
    for grid in inputs:
        reason = oversize(grid, "input")
        if reason is None:
            grid, reason = check_grid(grid, sequences=True)
            if reason is not None:
                reason = f"invalid input: {reason}"
        if reason is not None:
            outputs.append(None)
            errors.append(reason)
            values.append(None)
            continue
        if before_run is not None:
            before_run()
        if alarm:
            value, error = _run_until_deadline(compiled, grid, limits)
        else:
            value, error = compiled.run(grid, limits)
        output = None
        if error is None:
            error = oversize(value, "output")
            if error is not None:
                value = None  # too big to keep or to move
            else:
                output, reason = check_grid(value)
                if reason is not None:
                    error = f"invalid output: {reason}"
        outputs.append(output)
        errors.append(error)
        values.append(value)
    return ExecutionResult(tuple(outputs), tuple(errors), tuple(values) if keep_values else None)


def _run_until_deadline(compiled: CompiledProgram, grid: Grid, limits: ExecutionLimits):
    """``compiled.run`` with this input's deadline set for the guard's tick."""
    try:
        WATCH[DEADLINE] = time.perf_counter() + limits.timeout
        try:
            return compiled.run(grid, limits)
        finally:
            WATCH[DEADLINE] = 0.0
    except ProgramInterrupt:  # the tick fired between the end of the run and clearing the deadline
        WATCH[DEADLINE] = 0.0
        return None, f"timeout: interrupted after {limits.timeout:g} s (limit per input)"
