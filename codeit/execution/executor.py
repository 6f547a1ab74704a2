"""Run many ``(program, inputs)`` jobs across sandboxed worker processes (:class:`BatchExecutor`).

Each job gets what :func:`codeit.execution.runner.run_program` would give it in-process, but a
worker's address space is capped, a runaway line is interrupted by ``SIGALRM`` and a worker stuck
in C code is killed by a parent-side watchdog and replaced while the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

from codeit.execution.interrupt import ProgramInterrupt, on_alarm
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits, ExecutionResult
from codeit.execution.runner import CompileCache, clip, run_inputs
from codeit.execution.workers import available_cpus, stop_workers, worker_environment
from codeit.program import Program

__all__ = ["BatchExecutor"]

# --------------------------------------------------------------------------------------------- #
# Batch execution in worker processes.
#
# Each worker is a fresh interpreter (`python -c`, i.e. spawned, not forked) that imports only
# codeit.dsl, codeit.program and codeit.execute.  A plain subprocess is used instead of
# multiprocessing's spawn/forkserver because those re-import the parent's __main__ in every child,
# which would drag torch into the workers of a training script.  Parent and worker exchange
# length-prefixed pickles over the worker's stdin/stdout: the parent sends chunks of jobs, the
# worker acknowledges each chunk when it takes it and answers each job with its own frame, so the
# parent knows which job is running and since when (the watchdog's clock).
# --------------------------------------------------------------------------------------------- #

_HEADER = struct.Struct("!I")
_READY = b"ready"
_ACK = b"ack"
_POLL_INTERVAL = 0.002  # seconds
_WORKER_CODE = "from codeit.execution.executor import _worker_main; _worker_main()"


def _worker_main() -> None:
    """Entry point of a worker process: read job chunks from stdin, write one result per job."""
    import gc
    import resource

    # Private copies of the protocol pipes; fd 0/1 then point elsewhere so that stray prints from
    # DSL code can never corrupt the protocol stream.
    reader = os.fdopen(os.dup(0), "rb")
    limits, keep_values = pickle.loads(reader.read(_HEADER.unpack(reader.read(_HEADER.size))[0]))
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    if limits.memory_mb:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = limits.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    gc.freeze()  # the imported modules never need scanning again
    gc.set_threshold(20_000, 50, 100)  # DSL values are acyclic tuples/frozensets: collect rarely
    cache = CompileCache()
    _write_frame(out, _READY)
    while True:
        header = reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # parent closed the pipe: shut down
        chunk = pickle.loads(reader.read(_HEADER.unpack(header)[0]))
        _write_frame(out, _ACK)
        for job_id, text, inputs in chunk:
            _write_frame(out, _run_job(cache, job_id, text, inputs, limits, keep_values))


def _run_job(cache: CompileCache, job_id: int, text: str, inputs, limits: ExecutionLimits,
             keep_values: bool) -> bytes:
    """Run one job in a worker and pickle its result; nothing a program does escapes as an exception."""
    try:
        compiled = cache.get(text)
        if isinstance(compiled, str):
            n = len(inputs)
            result = ((None,) * n, (compiled,) * n, (None,) * n if keep_values else None)
        else:
            result = run_inputs(compiled, inputs, limits, True, keep_values)
    except (Exception, ProgramInterrupt) as exc:  # noqa: BLE001 - e.g. MemoryError while checking outputs
        n = len(inputs)
        result = ((None,) * n, (clip(f"error: {type(exc).__name__}: {exc}"),) * n,
                  (None,) * n if keep_values else None)
    try:
        return pickle.dumps((job_id, *result[:3]), pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a raw value that cannot be pickled (e.g. a function)
        values = tuple(v if _picklable(v) else None for v in result[2])
        return pickle.dumps((job_id, result[0], result[1], values), pickle.HIGHEST_PROTOCOL)


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


class _Worker:
    """Parent-side handle of one worker process and the jobs sent to it."""

    def __init__(self, config: bytes, env: dict[str, str]) -> None:
        import subprocess  # here, not at the top: workers never need it

        # -S: skip site-packages (the worker needs only the standard library and codeit, which is
        # on PYTHONPATH); it saves tens of milliseconds per start.
        self.proc = subprocess.Popen([sys.executable, "-S", "-c", _WORKER_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self.send_fd = self.proc.stdin.fileno()
        self.recv_fd = self.proc.stdout.fileno()
        os.set_blocking(self.send_fd, False)
        os.set_blocking(self.recv_fd, False)
        self.rbuf = bytearray()
        self.wbuf = bytearray(config)  # the first frame: limits and options
        self.ready = False
        self.started = time.monotonic()
        self.inflight: deque[int] = deque()  # ids of jobs sent and not answered, in order
        self.unacked: deque[int] = deque()  # sizes of the chunks sent and not yet acknowledged
        self.head_since = 0.0  # when the first in-flight job started, as far as the parent knows

    def head_started(self) -> bool:
        """Whether the worker has received the chunk holding its first in-flight job."""
        return len(self.inflight) > sum(self.unacked)

    def frames(self) -> Iterator[bytes]:
        """Complete frames received so far."""
        buf, pos, size = self.rbuf, 0, _HEADER.size
        while len(buf) - pos >= size:
            (n,) = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - size < n:
                break
            yield bytes(buf[pos + size:pos + size + n])
            pos += size + n
        del buf[:pos]

    def kill(self) -> str:
        """Kill the process (if still running) and describe how it ended."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        if code >= 0:
            return f"exit code {code}"
        try:
            return f"signal {-code} {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"


class _Run:
    """The state of one :meth:`BatchExecutor.imap` call."""

    def __init__(self) -> None:
        self.data: dict[int, tuple[str, Any] | None] = {}  # job id -> (text, inputs) until yielded
        self.pending: deque[int] = deque()  # ids waiting for a worker, in order
        self.results: dict[int, ExecutionResult] = {}  # finished, not yet yielded
        self.crashes: dict[int, int] = {}  # id -> times it was on a worker that died before starting it

    def requeue(self, ids: Iterable[int]) -> None:
        self.pending.extendleft(reversed([i for i in ids if i in self.data]))


class BatchExecutor:
    """Run many ``(program, inputs)`` jobs across worker processes; a context manager.

    >>> with BatchExecutor(workers=2) as pool:              # doctest: +SKIP
    ...     results = pool.run([(program_text, [grid1, grid2]), ...])

    Results come back in job order as :class:`ExecutionResult` values.  Jobs go to workers in
    chunks of up to ``chunk_size``; a worker acknowledges each chunk and answers each job on its
    own, so a parent-side watchdog knows which job runs since when: one that exceeds
    ``limits.timeout`` per input plus ``grace`` seconds has its worker killed (the job fails with
    ``timeout:``), and the worker is replaced while the batch goes on.  A worker that dies fails
    its running job with ``crashed:``; its jobs not yet started are sent again.  Each worker
    keeps a cache of compiled programs by text.  ``keep_values=True`` also returns the raw value
    of ``O`` (where it can be pickled).  One run at a time: not thread-safe, and starting a run
    abandons an unfinished :meth:`imap` (resuming that raises ``RuntimeError``).
    """

    def __init__(self, workers: int | None = None, limits: ExecutionLimits | None = None, *,
                 chunk_size: int = 32, grace: float = 0.5, keep_values: bool = False,
                 start_timeout: float = 60.0) -> None:
        self.n_workers = max(1, workers or available_cpus())
        self.limits = limits or DEFAULT_LIMITS
        self.chunk_size = max(1, chunk_size)
        self.grace = grace
        self.keep_values = keep_values
        self.start_timeout = start_timeout
        self.restarts = 0  # workers replaced after a kill or a crash (for tests and logs)
        self._workers: list[_Worker] = []
        self._selector: selectors.BaseSelector | None = None
        self._next_id = 0
        self._failed_starts = 0
        self._last_poll = 0.0
        self._active: _Run | None = None
        config = pickle.dumps((self.limits, keep_values), pickle.HIGHEST_PROTOCOL)
        self._config = _HEADER.pack(len(config)) + config
        self._env = worker_environment()

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (done lazily by :meth:`run` too)."""
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            for _ in range(self.n_workers):
                self._spawn()

    def close(self) -> None:
        """Stop the workers: close their input so they exit, kill any still there after a second."""
        if self._selector is None:
            return
        stop_workers(self._workers, grace_s=1.0)
        self._workers.clear()
        self._selector.close()
        self._selector = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn things down
            self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [worker.proc.pid for worker in self._workers]

    def _spawn(self) -> None:
        worker = _Worker(self._config, self._env)
        self._workers.append(worker)
        self._selector.register(worker.recv_fd, selectors.EVENT_READ, worker)
        self._selector.register(worker.send_fd, selectors.EVENT_WRITE, worker)  # the config frame
        self._flush(worker)

    def _replace(self, worker: _Worker) -> str:
        """Kill ``worker`` and start another; return how the old one ended."""
        self._selector.unregister(worker.recv_fd)
        if worker.wbuf:
            self._selector.unregister(worker.send_fd)
        how = worker.kill()
        self._workers.remove(worker)
        self._spawn()
        return how

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
        """Like :meth:`run`, but lazy: jobs are read a bounded window ahead, results yielded in order."""
        self.start()
        window = max(256, 8 * self.n_workers * self.chunk_size)
        source = iter(jobs)
        run = self._active = _Run()
        first = next_id = self._next_id  # ids are never reused, so stale answers are recognised
        exhausted = False
        while True:
            while not exhausted and next_id - first < window:
                try:
                    program, inputs = next(source)
                except StopIteration:
                    exhausted = True
                    break
                if not isinstance(inputs, (list, tuple)):
                    inputs = list(inputs)
                if inputs:
                    run.data[next_id] = (program if isinstance(program, str) else program.text, inputs)
                    run.pending.append(next_id)
                else:  # nothing to run
                    run.data[next_id] = None
                    run.results[next_id] = ExecutionResult((), (), () if self.keep_values else None)
                next_id += 1
            self._next_id = next_id
            while first in run.results:
                del run.data[first]
                yield run.results.pop(first)
                first += 1
                if self._active is not run:  # answers to this run's jobs went to the other one
                    raise RuntimeError("BatchExecutor: another run was started before this one finished")
            if exhausted and first == next_id:
                return
            self._dispatch(run, next_id - first)
            self._poll(run)

    def _dispatch(self, run: _Run, unfinished: int) -> None:
        """Keep two chunks queued on every worker, so that none waits for the parent."""
        chunk = max(1, min(self.chunk_size, unfinished // (2 * self.n_workers)))
        for worker in self._workers:
            while run.pending and len(worker.inflight) < 2 * chunk:
                ids = [run.pending.popleft() for _ in range(min(chunk, len(run.pending)))]
                if not worker.inflight:
                    worker.head_since = time.monotonic()
                worker.inflight.extend(ids)
                worker.unacked.append(len(ids))
                payload = pickle.dumps([(i, *run.data[i]) for i in ids], pickle.HIGHEST_PROTOCOL)
                if not worker.wbuf:
                    self._selector.register(worker.send_fd, selectors.EVENT_WRITE, worker)
                worker.wbuf += _HEADER.pack(len(payload))
                worker.wbuf += payload
                self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        try:
            written = os.write(worker.send_fd, worker.wbuf)
        except BlockingIOError:
            return
        except OSError:  # the worker died; reading its output will report the end of file
            written = len(worker.wbuf)
        del worker.wbuf[:written]
        if not worker.wbuf:
            self._selector.unregister(worker.send_fd)

    def _poll(self, run: _Run) -> None:
        """Wait for answers or the next deadline; then enforce deadlines.

        Polls are at least ``_POLL_INTERVAL`` apart, so that one wake-up of the parent collects
        the answers to several jobs (the workers have a chunk queued meanwhile).
        """
        now = time.monotonic()
        if now - self._last_poll < _POLL_INTERVAL:
            time.sleep(_POLL_INTERVAL - (now - self._last_poll))
            now = time.monotonic()
        self._last_poll = now
        timeout = max(0.0, min([0.5] + [self._deadline(w, run) - now for w in self._workers]))
        for key, events in self._selector.select(timeout):
            worker = key.data
            if worker not in self._workers:
                continue  # replaced earlier in this round
            if events & selectors.EVENT_WRITE:
                self._flush(worker)
            if events & selectors.EVENT_READ:
                self._receive(worker, run)
        now = time.monotonic()
        for worker in list(self._workers):
            if now > self._deadline(worker, run):
                self._expired(worker, run, now)

    def _deadline(self, worker: _Worker, run: _Run) -> float:
        if not worker.ready:
            return worker.started + self.start_timeout
        if not worker.inflight:
            return float("inf")
        entry = run.data.get(worker.inflight[0])
        n_inputs = len(entry[1]) if entry else 10  # unknown: a job of an abandoned run
        return worker.head_since + self.limits.timeout * n_inputs + self.grace

    def _receive(self, worker: _Worker, run: _Run) -> None:
        try:
            data = os.read(worker.recv_fd, 65536)  # a pipe holds 64 KiB; bigger reads cost a big malloc
        except BlockingIOError:
            return
        if not data:  # end of file: the worker died
            self._died(worker, run, "crashed: worker died ({})")
            return
        worker.rbuf += data
        for frame in worker.frames():
            now = time.monotonic()
            if frame == _ACK:
                size = worker.unacked.popleft()
                if len(worker.inflight) == sum(worker.unacked) + size:  # it holds the head job
                    worker.head_since = now
            elif frame == _READY:
                worker.ready = True
                worker.head_since = now
                self._failed_starts = 0
            else:
                job_id, outputs, errors, values = pickle.loads(frame)
                worker.inflight.popleft()
                worker.head_since = now
                if job_id in run.data:
                    run.results[job_id] = ExecutionResult(outputs, errors, values)

    def _expired(self, worker: _Worker, run: _Run, now: float) -> None:
        """The watchdog: a worker past its deadline is killed and replaced."""
        reason = (f"timeout: worker killed after {now - worker.head_since:.1f} s "
                  f"(limit {self.limits.timeout:g} s per input)")
        self._died(worker, run, reason)

    def _died(self, worker: _Worker, run: _Run, reason: str) -> None:
        """Replace a dead (or killed) worker; fail the job it was running, send the others again."""
        how = self._replace(worker)
        if not worker.ready:
            self._failed_starts += 1
            if self._failed_starts >= 3:
                self.close()
                raise RuntimeError(f"executor workers fail to start ({how}); see their stderr above")
            run.requeue(worker.inflight)
            return
        self.restarts += 1
        if not worker.inflight:
            return
        if worker.head_started():
            failed = [worker.inflight.popleft()]
        else:  # died before reading the chunk: nothing of it ran, unless this keeps happening
            failed = [i for i in worker.inflight if run.crashes.get(i, 0) >= 2]
            for i in worker.inflight:
                run.crashes[i] = run.crashes.get(i, 0) + 1
        for job_id in failed:
            if run.data.get(job_id):
                n = len(run.data[job_id][1])
                run.results[job_id] = ExecutionResult((None,) * n, (reason.format(how),) * n,
                                                      (None,) * n if self.keep_values else None)
        run.requeue(i for i in worker.inflight if i not in failed)



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

