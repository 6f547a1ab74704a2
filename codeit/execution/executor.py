"""Run many ``(program, inputs)`` jobs across sandboxed worker processes (:class:`BatchExecutor`).

Each job gets what :func:`codeit.execution.runner.run_program` would give it in-process, but in a
worker process of :mod:`codeit.execution.workers`: its address space is capped, a runaway line is
interrupted at its input's deadline, and a worker stuck in C code is killed by the watchdog (each
input gets ``limits.timeout`` plus ``grace`` seconds) and replaced while the batch goes on.  Both
sides of that client are here: :class:`BatchExecutor` in the parent, :class:`JobHandler` in the
workers (``python -S``: they import only the DSL, the program parser and the runner).
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

from codeit.execution.interrupt import guard_process
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits, ExecutionResult, oversize
from codeit.execution.runner import CompileCache, clip, run_inputs
from codeit.execution.workers import Job, Outcome, WorkerPool, WorkerSpec, available_cpus, beat
from codeit.program import Program

__all__ = ["MAX_ANSWER_BYTES", "WINDOW_BYTES", "BatchExecutor", "JobHandler"]

#: Most bytes a job's results may take on their way back (larger: every input fails with ``limit:``).
MAX_ANSWER_BYTES = 64 << 20
#: Read-ahead of :meth:`BatchExecutor.imap` in bytes: the jobs' inputs (as sent) and the results held
#: for jobs that finished before an earlier one (besides at most ``window`` jobs); one job always fits.
WINDOW_BYTES = 32 << 20


class JobHandler:
    """The worker side: run one job, a pickled ``(program text, inputs)``, and pickle its result
    ``(outputs, errors, values)``.  Nothing a program does escapes as an exception."""

    def __init__(self, config: tuple[ExecutionLimits, bool]) -> None:
        self.limits, self.keep_values = config
        guard_process(self.limits)  # the tick that interrupts a program at its input's deadline
        gc.freeze()  # the imported modules never need scanning again
        gc.set_threshold(20_000, 50, 100)  # DSL values are acyclic tuples/frozensets: collect rarely
        self.cache = CompileCache()

    def setup(self, data: bytes) -> None:
        """Nothing to set up: each job carries its program."""

    def run(self, item: memoryview) -> bytes:
        text, inputs = pickle.loads(item)
        n, keep = len(inputs), self.keep_values
        try:
            compiled = self.cache.get(text)
            if isinstance(compiled, str):
                result = ((None,) * n, (compiled,) * n, (None,) * n if keep else None)
            else:
                result = run_inputs(compiled, inputs, self.limits, True, keep, before_run=beat)[:3]
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            result = ((None,) * n, (clip(f"error: {type(exc).__name__}: {exc}"),) * n, (None,) * n if keep else None)
        try:
            answer = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - a raw value that cannot be pickled (e.g. a function)
            values = tuple(v if _picklable(v) else None for v in result[2])
            answer = pickle.dumps((result[0], result[1], values), pickle.HIGHEST_PROTOCOL)
        if len(answer) > MAX_ANSWER_BYTES:
            reason = f"limit: the job's results take {len(answer) / (1 << 20):.0f} MiB (at most {MAX_ANSWER_BYTES >> 20} MiB)"
            answer = pickle.dumps(((None,) * n, (reason,) * n, (None,) * n if keep else None))
        return answer


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


class _Run:
    """The state of one :meth:`BatchExecutor.imap` call: what each job needs to become a result, the
    results not yet yielded, and the bytes held for both (the read-ahead window)."""

    def __init__(self) -> None:
        self.sent: dict[int, tuple[int, dict[int, str] | None]] = {}  # id -> (inputs, oversize inputs)
        self.results: dict[int, ExecutionResult] = {}  # finished, not yet yielded
        self.held: dict[int, int] = {}  # id -> bytes held for it
        self.bytes = 0

    def hold(self, job_id: int, size: int) -> None:
        self.bytes += size - self.held.get(job_id, 0)
        self.held[job_id] = size

    def release(self, job_id: int) -> None:
        self.bytes -= self.held.pop(job_id, 0)
        self.sent.pop(job_id, None)


class BatchExecutor:
    """Run many ``(program, inputs)`` jobs across worker processes; a context manager.

    >>> with BatchExecutor(workers=2) as pool:              # doctest: +SKIP
    ...     results = pool.run([(program_text, [grid1, grid2]), ...])

    Results come back in job order as :class:`ExecutionResult` values.  Jobs go to workers in
    messages of up to ``chunk_size``; the watchdog (:mod:`codeit.execution.workers`) gives each input
    ``limits.timeout`` plus ``grace`` seconds from its start: a worker past that is killed (its job
    fails with ``timeout:``) and replaced while the batch goes on.  A worker that dies fails its
    running job with ``crashed:``; its jobs not yet started are sent again.  An input grid of more
    than :data:`~codeit.execution.limits.MAX_GRID_CELLS` cells fails with ``limit:`` and is not sent.
    Each worker keeps a cache of compiled programs by text.  ``keep_values=True`` also returns the
    raw value of ``O`` (where it can be pickled).  One run at a time: not thread-safe, and starting a
    run abandons an unfinished :meth:`imap` (resuming that raises ``RuntimeError``).
    """

    def __init__(self, workers: int | None = None, limits: ExecutionLimits | None = None, *,
                 chunk_size: int = 32, grace: float = 0.5, keep_values: bool = False,
                 start_timeout: float = 60.0) -> None:
        self.n_workers = max(1, workers or available_cpus())
        self.limits = limits or DEFAULT_LIMITS
        self.chunk_size = max(1, chunk_size)
        self.grace = grace
        self.keep_values = keep_values
        spec = WorkerSpec("codeit.execution.executor:JobHandler", (self.limits, keep_values),
                          memory_mb=self.limits.memory_mb, start_timeout=start_timeout)
        self._pool = WorkerPool(spec, self.n_workers, depth=2)
        self._next_id = 0  # ids are never reused, so answers to an abandoned run are recognised
        self._active: _Run | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (done lazily by :meth:`run` too)."""
        self._pool.start()

    def close(self) -> None:
        """Stop the workers: close their input so they exit, kill any still there after a second."""
        self._pool.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn things down
            self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return self._pool.pids

    @property
    def restarts(self) -> int:
        """Workers replaced after a kill or a crash (for tests and logs)."""
        return self._pool.restarts

    # -- running ------------------------------------------------------------------------------
    def run(self, jobs: Iterable[tuple[Program | str, Sequence[Any]]],
            progress: bool | Callable[[int, int], None] | None = None) -> list[ExecutionResult]:
        """Run every job and return the results in job order.

        ``progress``: a callable ``(done, total)``, ``True`` for a tqdm bar, ``False`` for none;
        ``None`` (default) shows a bar only for batches of 5,000 jobs or more on a terminal.
        """
        jobs = list(jobs)
        report = _progress_reporter(progress, len(jobs))
        results = []
        for result in self.imap(jobs):
            results.append(result)
            if report is not None:
                report(len(results))
        if report is not None:
            report(None)
        return results

    def imap(self, jobs: Iterable[tuple[Program | str, Sequence[Any]]]) -> Iterator[ExecutionResult]:
        """Like :meth:`run`, but lazy: jobs are read a bounded window ahead (at most ``window`` jobs
        and :data:`WINDOW_BYTES`), results yielded in order."""
        pool = self._pool
        pool.start()
        pool.discard_pending()  # those of an abandoned run
        window = max(256, 8 * self.n_workers * self.chunk_size)
        source = iter(jobs)
        run = self._active = _Run()
        first = next_id = self._next_id
        exhausted = False
        while True:
            while not exhausted and next_id - first < window and (run.bytes < WINDOW_BYTES or next_id == first):
                try:
                    program, inputs = next(source)
                except StopIteration:
                    exhausted = True
                    break
                self._admit(run, next_id, program, inputs)
                next_id += 1
            self._next_id = next_id
            while first in run.results:
                run.release(first)
                yield run.results.pop(first)
                first += 1
                if self._active is not run:  # answers to this run's jobs went to the other one
                    raise RuntimeError("BatchExecutor: another run was started before this one finished")
            if exhausted and first == next_id:
                return
            chunk = max(1, min(self.chunk_size, (next_id - first) // (2 * self.n_workers)))
            for outcome in pool.step(chunk):
                job_id = outcome.job.id
                if job_id in run.sent:  # else a job of an abandoned run
                    run.results[job_id] = self._result(outcome, *run.sent[job_id])
                    run.hold(job_id, len(outcome.answer or b""))

    def _admit(self, run: _Run, job_id: int, program: Program | str, inputs: Sequence[Any]) -> None:
        """Send one job to the pool, or make its result at once (no inputs, none of a sendable size)."""
        text = program if isinstance(program, str) else program.text
        if not isinstance(inputs, (list, tuple)):
            inputs = list(inputs)
        over = {i: reason for i, grid in enumerate(inputs) if (reason := oversize(grid, "input"))} or None
        send = [grid for i, grid in enumerate(inputs) if i not in over] if over else inputs
        if not send:
            run.results[job_id] = self._merge(len(inputs), over, (), (), ())
            return
        try:
            data = pickle.dumps((text, send), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - e.g. a list nested too deep to pickle: this job fails alone
            reason = clip(f"invalid input: cannot be passed to a worker ({type(exc).__name__}: {exc})")
            run.results[job_id] = self._failed(len(inputs), reason)
            return
        run.sent[job_id] = (len(inputs), over)
        run.hold(job_id, len(data))
        self._pool.submit([Job(job_id, data, self.limits.timeout + self.grace)])

    def _result(self, outcome: Outcome, n: int, over: dict[int, str] | None) -> ExecutionResult:
        """The result of a job that went to a worker, whatever happened to it there."""
        if outcome.answer is not None:
            outputs, errors, values = pickle.loads(outcome.answer)
            return self._merge(n, over, outputs, errors, values)
        if outcome.error is not None:
            reason = clip(f"error: {outcome.error}")
        elif outcome.killed:
            reason = (f"timeout: worker killed after {outcome.silent_s:.1f} s "
                      f"(limit {self.limits.timeout:g} s per input)")
        elif outcome.taking:
            reason = f"crashed: worker died taking the job, twice ({outcome.died})"
        else:
            reason = f"crashed: worker died ({outcome.died})"
        m = n - len(over or ())
        return self._merge(n, over, (None,) * m, (reason,) * m, (None,) * m)

    def _merge(self, n: int, over: dict[int, str] | None, outputs, errors, values) -> ExecutionResult:
        """A job's result from its workers' part and the ``limit:`` reasons of inputs not sent."""
        if over:
            rest = iter(zip(outputs, errors, values or (None,) * len(outputs)))
            parts = [(None, over[i], None) if i in over else next(rest) for i in range(n)]
            outputs, errors, values = (tuple(p[k] for p in parts) for k in range(3))
        return ExecutionResult(tuple(outputs), tuple(errors), tuple(values) if self.keep_values else None)

    def _failed(self, n: int, reason: str) -> ExecutionResult:
        return ExecutionResult((None,) * n, (reason,) * n, (None,) * n if self.keep_values else None)


def _progress_reporter(progress, total: int) -> Callable[[int | None], None] | None:
    """A function called with the count done (``None`` at the end), or ``None`` for no reporting."""
    if callable(progress):
        return lambda done: progress(done, total) if done is not None else None
    if progress is None:
        progress = total >= 5000 and sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, unit="job", smoothing=0.05)

    def report(done: int | None) -> None:
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)

    return report

