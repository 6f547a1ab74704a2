"""``codeit execute FILE.jsonl``: run DSL programs on grids, one JSON line in, one JSON line out.

Each input line is ``{"program": "<text>", "inputs": [grid, ...]}`` (program in either text form);
for each, in order, exactly one line ``{"outputs": [grid or null, ...], "errors": [null or reason, ...]}``
is written to stdout, one entry per input grid.  A malformed line never stops the run: it gets an
output line whose errors say what is wrong (one null output and one error if its inputs cannot be
read), and so does a line of more than :data:`MAX_LINE_BYTES` (not even parsed).  A stream that is not
JSON lines at all (its first line is not UTF-8 JSON: a binary file, a pretty-printed document) is
one error and exit status 2.  Lines are streamed through a
:class:`~codeit.execution.executor.BatchExecutor` whose read-ahead is bounded in lines and in bytes,
so files of any size run in constant memory, and output is flushed as it goes.  ``--backend ray``
runs them on actors across a Ray cluster instead (:mod:`codeit.execution.backend`); the output is the
same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import IO, Any, TextIO

from codeit.errors import UserError
from codeit.execution.backend import Executor, add_backend_arguments, make_executor, ray_config
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits, ExecutionResult

_FLUSH_EVERY = 0.25  # seconds between flushes of stdout while results keep coming
#: Longest input line, in bytes; a longer one gets a ``limit:`` error without being read into memory.
MAX_LINE_BYTES = 16 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSONL file of {\"program\": ..., \"inputs\": [...]} lines; - for stdin")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: one per available CPU)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_LIMITS.timeout, metavar="S",
                        help="time limit per program and input grid in seconds (default: %(default)s)")
    parser.add_argument("--line-timeout", type=float, default=DEFAULT_LIMITS.line_timeout, metavar="S",
                        help="time limit per program line in seconds (default: %(default)s)")
    parser.add_argument("--max-elements", type=int, default=DEFAULT_LIMITS.max_elements, metavar="N",
                        help="drop intermediate values with this many elements or more; 0 switches the "
                             "rule off (default: %(default)s)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_LIMITS.memory_mb, metavar="MB",
                        help="address-space cap per worker in MiB, 0 for none (default: %(default)s)")
    add_backend_arguments(parser)


def main(args: argparse.Namespace) -> int:
    try:
        limits = ExecutionLimits(timeout=args.timeout, line_timeout=args.line_timeout,
                                 max_elements=args.max_elements, memory_mb=args.memory_mb)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc}") from None
    try:
        with stream:
            lines = _lines(stream)
            head = _check_jsonl(lines, "standard input" if args.file == "-" else args.file)
            execution = {"backend": args.backend, "workers": args.workers, **ray_config(args)}
            with make_executor(execution, limits=limits, log=lambda text: print(text, file=sys.stderr)) as pool:
                _stream(_chain(head, lines), sys.stdout, pool)
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 0
    return 0


def _lines(stream: IO[bytes]) -> Iterator[bytes | int]:
    """The lines of a byte stream; a line longer than :data:`MAX_LINE_BYTES` is skipped unread and
    stands as its length (an int)."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while line and not line.endswith(b"\n"):
            line = stream.readline(1 << 20)
            size += len(line)
        yield size


def _check_jsonl(lines: Iterator[bytes | int], name: str) -> list[bytes | int]:
    """The lines up to the first one that is not blank, once it shows that the stream is JSON lines:
    UTF-8 text, a JSON value.  Otherwise (a binary file, a pretty-printed document) a
    :class:`UserError`: one clear error instead of one per "line"."""
    head = []
    for line in lines:
        head.append(line)
        if isinstance(line, int):
            return head  # too long to tell; it gets its own error
        if not line.strip():
            continue
        problem, nul = None, line.find(b"\0")
        if nul >= 0:
            problem = f"is not text (a NUL byte at byte {nul})"
        else:
            try:
                json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                problem = f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
            except RecursionError:
                pass  # JSON, nested absurdly deep: that line fails on its own
            except ValueError as exc:
                problem = f"is not JSON ({exc})"
        if problem is not None:
            raise UserError(f"{name} is not JSON lines: line {len(head)} {problem}; expected one "
                            f"{{\"program\": ..., \"inputs\": [...]}} object per line")
        return head
    return head


def _chain(head: list[bytes | int], rest: Iterator[bytes | int]) -> Iterator[bytes | int]:
    yield from head
    yield from rest


def _stream(lines: Iterator[bytes | int], out: TextIO, pool: Executor) -> None:
    """Write one result line per input line, in order, as results arrive."""
    # Every input line becomes one pool job, so the pool's bounded read-ahead bounds memory; a
    # malformed line becomes an empty job (answered without a worker) and its ready-made failure
    # waits in `overrides`, in line order, until the pool's result for it comes out.
    overrides: deque[ExecutionResult | None] = deque()

    def jobs() -> Iterator[tuple[str, Any]]:
        for number, line in enumerate(lines, 1):
            try:
                job = _read_job(line, number)
            except Exception as exc:  # noqa: BLE001 - whatever a line holds, it fails alone
                job = _failed(1, f"invalid job: line {number} cannot be read ({type(exc).__name__}: {exc})")
            if isinstance(job, ExecutionResult):
                overrides.append(job)
                yield "", []
            else:
                overrides.append(None)
                yield job

    last_flush = time.monotonic()
    for result in pool.imap(jobs()):
        override = overrides.popleft()
        if override is not None:
            result = override
        out.write(json.dumps({"outputs": result.outputs, "errors": result.errors}, separators=(",", ":")))
        out.write("\n")
        if time.monotonic() - last_flush > _FLUSH_EVERY:
            out.flush()
            last_flush = time.monotonic()
    out.flush()


def _read_job(line: bytes | int, number: int) -> tuple[str, list] | ExecutionResult:
    """The job on one input line, or the failure result that stands for a malformed line."""
    if isinstance(line, int):
        return _failed(1, f"limit: line {number} takes {line / (1 << 20):.1f} MiB (at most "
                          f"{MAX_LINE_BYTES >> 20} MiB per line)")
    # undecodable bytes become U+FFFD, so such a line fails on its own instead of ending the run
    line = line.decode("utf-8", errors="replace")
    if not line.strip():
        return _failed(1, f"invalid job: line {number} is empty")
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        return _failed(1, f"invalid job: line {number} is not valid JSON ({exc})")
    if not isinstance(record, dict):
        return _failed(1, f"invalid job: line {number} is a JSON {type(record).__name__}, "
                          f"not an object with 'program' and 'inputs'")
    inputs = record.get("inputs")
    if not isinstance(inputs, list):
        reason = "has no 'inputs'" if inputs is None else "has 'inputs' that is not a list of grids"
        return _failed(1, f"invalid job: line {number} {reason}")
    program = record.get("program")
    if not isinstance(program, str):
        reason = "has no 'program'" if program is None else "has a 'program' that is not a string"
        return _failed(len(inputs), f"invalid job: line {number} {reason}")
    return program, inputs


def _failed(n: int, reason: str) -> ExecutionResult:
    return ExecutionResult((None,) * n, (reason,) * n)
