"""Sandboxed worker processes: the one module that starts, caps, feeds, watches, kills and replaces them.

A worker is a fresh interpreter (``python -S -c``: spawned, never forked from a parent that may hold
torch, and blocked from importing it) running :func:`worker_main`.  It caps its own address space
(``RLIMIT_AS``), builds its client's *handler* (:class:`WorkerSpec`) and then takes messages from its
stdin: a *setup* (state for the jobs that follow, e.g. the programs to score) or a batch of *jobs*,
each answered on its own.  Handlers map bytes to bytes; the clients are the executor
(:class:`codeit.execution.executor.BatchExecutor`: a program and its inputs) and the mutation
baseline (:mod:`codeit.baseline.pool`: a seed to mutate, a task to score).

**Watchdog.**  The parent knows which job a worker runs and since when: a worker acknowledges each
message once it has read it, answers each job as it finishes, and *beats* (:func:`beat`) when it
starts a new stretch of watched work (the executor: each input; the baseline: every 64 programs).
A running job may stay silent for its ``budget`` seconds after the worker's last sign of life; past
that the worker is killed and replaced, the job fails, and the jobs behind it are sent again.  A
message in transit is not timed against its jobs (any bytes from the worker count as a sign of
life, and a worker gets ``start_timeout`` seconds to take a message), so moving data never counts
against a program.  A worker that dies while taking a message of several jobs gets them back one per
message: only a job that kills a worker on its own, twice, is failed for it -- never its neighbours.

**Wire format.**  Frames ``(length, kind)`` + payload in both directions.  A job message holds
``(job id, length)`` + item per job.  A worker whose parent has gone away exits quietly.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import resource
import selectors
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, Self

__all__ = ["Handler", "Job", "Outcome", "WorkerPool", "WorkerSpec", "available_cpus", "beat", "worker_environment",
           "worker_main"]

_HEADER = struct.Struct("!IB")  # payload length, kind
_JOB = struct.Struct("!QI")  # job id, item length
_ID = struct.Struct("!Q")
# parent -> worker
_SPEC, _SETUP, _JOBS = 1, 2, 3
# worker -> parent
_READY, _ACK, _BEAT, _ANSWER, _FAILED = 11, 12, 13, 14, 15
_CODE = "from codeit.execution.workers import worker_main; worker_main()"
_EXIT_UNREADABLE = 3  # a worker that cannot take a message (e.g. over its memory cap) exits with this
_POLL_INTERVAL = 0.002  # seconds between polls: one wake-up of the parent collects several answers
_READ_SIZE = 65536  # a pipe holds 64 KiB; bigger reads cost a big allocation each time


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker runs and under which caps.

    ``handler`` is ``"module:function"``, called in the worker with ``config`` (picklable) to build
    the :class:`Handler`.  ``memory_mb`` caps the worker's address space (0: none).  ``site`` starts
    it with site-packages (installed packages: numpy, plugins' entry points), else ``python -S``
    (faster).  ``beat_interval`` is the least time between two beats.  ``start_timeout`` is how long
    a worker may take to start, or to take a message (its setup included).
    """

    handler: str
    config: Any = None
    memory_mb: int = 0
    site: bool = False
    beat_interval: float = 0.05
    start_timeout: float = 60.0


class Handler(Protocol):
    """What runs in a worker: ``setup`` takes a setup message, ``run`` answers one job (its item is
    bytes-like: a ``memoryview``)."""

    def setup(self, data: bytes) -> None: ...

    def run(self, item: memoryview) -> bytes: ...


@dataclass(eq=False)
class Job:
    """One item of work: the client's id (unique while the pool runs), the item, and the seconds it
    may stay silent while it runs (renewed by each beat)."""

    id: int
    data: bytes
    budget: float
    alone: bool = False  # send it in a message of its own (a worker died taking it with others)
    lost: int = 0  # workers that died taking it alone


@dataclass
class Outcome:
    """How a job ended: its ``answer``; or ``error`` (the handler raised: its message); or ``died``
    (how its worker ended while running it, or while taking it: ``taking``), with ``silent_s``
    seconds without a sign of life when the watchdog killed it (``killed``)."""

    job: Job
    answer: bytes | None = None
    error: str | None = None
    died: str | None = None
    killed: bool = False
    taking: bool = False
    silent_s: float = 0.0


def available_cpus() -> int:
    """CPUs this process may run on (the default number of workers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_environment() -> dict[str, str]:
    """The environment of a worker interpreter: this one's, with this package importable first (a
    worker starts from a fresh ``python -c``, whatever the current directory)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


# --------------------------------------------------------------------------------------------------
# the worker side


class _Beats:
    """The worker's protocol output and when it last wrote to it (a beat is then not needed yet)."""

    fd = -1
    interval = 0.05
    last = 0.0


def beat() -> None:
    """Tell the parent that this worker is making progress (renews its job's watchdog clock), at most
    every ``beat_interval``; does nothing outside a worker.  Call it where a new stretch of watched
    work begins -- never from code a program controls."""
    if _Beats.fd >= 0:
        now = time.monotonic()
        if now - _Beats.last >= _Beats.interval:
            _write(_BEAT)


def _write(kind: int, *parts: bytes) -> None:
    """One frame to the parent; if the parent has gone away, exit quietly."""
    data = b"".join((_HEADER.pack(sum(map(len, parts)), kind), *parts))
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(_Beats.fd, view):]
    except OSError:  # EPIPE: nobody reads any more
        os._exit(0)
    _Beats.last = time.monotonic()


def _read(reader: Any) -> tuple[int, bytes] | None:
    """The next frame from the parent, or ``None`` at the end of its input (time to stop)."""
    header = reader.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size, kind = _HEADER.unpack(header)
    try:
        payload = reader.read(size)
    except MemoryError:  # over the memory cap: the parent sends its jobs again, one per message
        os._exit(_EXIT_UNREADABLE)
    if len(payload) < size:
        return None
    return kind, payload


def worker_main() -> None:
    """Entry point of a worker process (module docstring)."""
    # Private copies of the protocol pipes; fd 0/1 then point elsewhere so that stray prints from
    # DSL code can never corrupt the protocol stream.
    reader = os.fdopen(os.dup(0), "rb")
    _Beats.fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    sys.modules["torch"] = None  # never in a worker: `import torch` raises ImportError
    frame = _read(reader)
    if frame is None:
        return
    spec: WorkerSpec = pickle.loads(frame[1])
    _Beats.interval = spec.beat_interval
    if spec.memory_mb:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = spec.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    module, _, name = spec.handler.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)(spec.config)
    _write(_READY)
    while (frame := _read(reader)) is not None:
        kind, payload = frame
        if kind == _SETUP:
            handler.setup(payload)
            continue
        _write(_ACK)
        view, pos = memoryview(payload), 0
        while pos < len(view):
            job_id, size = _JOB.unpack_from(view, pos)
            pos += _JOB.size
            item = view[pos:pos + size]  # not copied: a job may be big
            pos += size
            try:
                answer = handler.run(item)
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                _write(_FAILED, _ID.pack(job_id), f"{type(exc).__name__}: {exc}"[:300].encode())
                continue
            _write(_ANSWER, _ID.pack(job_id), answer)


# --------------------------------------------------------------------------------------------------
# the parent side


class _Worker:
    """Parent-side handle of one worker process and the jobs sent to it."""

    def __init__(self, spec: WorkerSpec, first_frame: bytes, env: dict[str, str]) -> None:
        import subprocess  # here, not at the top: workers never need it

        command = [sys.executable, *(() if spec.site else ("-S",)), "-c", _CODE]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     close_fds=True)
        self.send_fd = self.proc.stdin.fileno()
        self.recv_fd = self.proc.stdout.fileno()
        os.set_blocking(self.send_fd, False)
        os.set_blocking(self.recv_fd, False)
        self.rbuf = bytearray()
        self.wbuf = bytearray(first_frame)
        self.ready = False
        self.started = self.since = time.monotonic()  # since: its last sign of life, as far as we know
        self.inflight: deque[Job] = deque()  # jobs sent and not answered, in order
        self.unacked: deque[int] = deque()  # sizes of the messages sent and not yet acknowledged
        self.unacked_jobs = 0
        self.setup_key: Hashable = None

    def head_started(self) -> bool:
        """Whether the worker has taken the message holding its first unanswered job."""
        return len(self.inflight) > self.unacked_jobs

    def frames(self) -> Iterable[tuple[int, bytes]]:
        """Complete frames received so far."""
        buf, pos, size = self.rbuf, 0, _HEADER.size
        while len(buf) - pos >= size:
            n, kind = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - size < n:
                break
            yield kind, bytes(buf[pos + size:pos + size + n])
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


class WorkerPool:
    """Worker processes for one client (module docstring); a context manager.

    The client :meth:`submit`\\ s jobs and calls :meth:`step` until they are done; each step sends
    messages of up to ``chunk`` jobs so that every worker has up to ``depth`` messages queued, waits
    for answers or the next deadline, enforces deadlines and returns the jobs that ended
    (:class:`Outcome`).  Answers come in job order per worker, not overall.  ``setup`` (a key and a
    message) is sent to each worker before its next job whenever that worker has not had it
    (again after a restart).  A worker that dies before it is ready is replaced; three in a row raise
    ``RuntimeError``.  Not thread-safe.
    """

    def __init__(self, spec: WorkerSpec, workers: int | None = None, *, depth: int = 2) -> None:
        self.spec = spec
        self.n_workers = max(1, workers or available_cpus())
        self.depth = max(1, depth)
        self.setup: tuple[Hashable, bytes] | None = None
        self.restarts = 0  # workers replaced after a kill or a crash (for tests and logs)
        payload = pickle.dumps(spec, pickle.HIGHEST_PROTOCOL)
        self._first_frame = _HEADER.pack(len(payload), _SPEC) + payload
        self._env = worker_environment()
        self._workers: list[_Worker] = []
        self._pending: deque[Job] = deque()
        self._selector: selectors.BaseSelector | None = None
        self._failed_starts = 0
        self._last_poll = 0.0
        self._outcomes: list[Outcome] = []

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (done by :meth:`step` too)."""
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            for _ in range(self.n_workers):
                self._spawn()

    def close(self, grace_s: float = 1.0) -> None:
        """Stop the workers: close their input so that they exit, kill any still there after
        ``grace_s`` seconds in all.  Jobs not answered are dropped."""
        if self._selector is None:
            return
        import subprocess

        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.proc.stdin.close()
        deadline = time.monotonic() + grace_s
        for worker in self._workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            worker.kill()
        self._workers.clear()
        self._pending.clear()
        self._selector.close()
        self._selector = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn things down
            self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [worker.proc.pid for worker in self._workers]

    @property
    def busy(self) -> bool:
        """Whether jobs are waiting or running."""
        return bool(self._pending) or any(worker.inflight for worker in self._workers)

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, jobs: Iterable[Job], *, first: bool = False) -> None:
        """Queue jobs (``first``: ahead of those waiting)."""
        if first:
            self._pending.extendleft(reversed(list(jobs)))
        else:
            self._pending.extend(jobs)

    def discard_pending(self) -> None:
        """Forget the jobs not sent yet (those running still end, in later steps)."""
        self._pending.clear()

    def step(self, chunk: int = 1) -> list[Outcome]:
        """Send what fits, wait for answers or the next deadline (at most 0.5 s), enforce deadlines;
        the jobs that ended meanwhile."""
        self.start()
        self._dispatch(max(1, chunk))
        self._poll()
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    # -- internals ----------------------------------------------------------------------------
    def _spawn(self) -> None:
        worker = _Worker(self.spec, self._first_frame, self._env)
        self._workers.append(worker)
        self._selector.register(worker.recv_fd, selectors.EVENT_READ, worker)
        self._selector.register(worker.send_fd, selectors.EVENT_WRITE, worker)  # the spec frame
        self._flush(worker)

    def _dispatch(self, chunk: int) -> None:
        pending = self._pending
        for worker in self._workers:
            while pending and len(worker.inflight) < self.depth * chunk:
                if self.setup is not None and worker.setup_key != self.setup[0]:
                    self._send(worker, _HEADER.pack(len(self.setup[1]), _SETUP), self.setup[1])
                    worker.setup_key = self.setup[0]
                if pending[0].alone:
                    jobs = [pending.popleft()]
                else:
                    jobs = []
                    while pending and len(jobs) < chunk and not pending[0].alone:
                        jobs.append(pending.popleft())
                if not worker.inflight:
                    worker.since = time.monotonic()
                worker.inflight.extend(jobs)
                worker.unacked.append(len(jobs))
                worker.unacked_jobs += len(jobs)
                parts = []
                for job in jobs:
                    parts.append(_JOB.pack(job.id, len(job.data)))
                    parts.append(job.data)
                self._send(worker, _HEADER.pack(sum(map(len, parts)), _JOBS), *parts)

    def _send(self, worker: _Worker, *parts: bytes) -> None:
        if not worker.wbuf:
            self._selector.register(worker.send_fd, selectors.EVENT_WRITE, worker)
        for part in parts:
            worker.wbuf += part
        self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        """Write what the worker's pipe takes now."""
        written = 0
        try:
            while written < len(worker.wbuf):
                written += os.write(worker.send_fd, memoryview(worker.wbuf)[written:written + _READ_SIZE])
        except BlockingIOError:
            pass
        except OSError:  # the worker died; reading its output will report the end of file
            written = len(worker.wbuf)
        del worker.wbuf[:written]
        if not worker.wbuf:
            self._selector.unregister(worker.send_fd)

    def _poll(self) -> None:
        now = time.monotonic()
        if now - self._last_poll < _POLL_INTERVAL and not any(w.wbuf or w.rbuf for w in self._workers):
            time.sleep(_POLL_INTERVAL - (now - self._last_poll))
            now = time.monotonic()
        self._last_poll = now
        timeout = max(0.0, min([0.5] + [self._deadline(w) - now for w in self._workers]))
        for key, events in self._selector.select(timeout):
            worker = key.data
            if worker not in self._workers:
                continue  # replaced earlier in this round
            if events & selectors.EVENT_WRITE:
                self._flush(worker)
            if events & selectors.EVENT_READ:
                self._receive(worker)
        now = time.monotonic()
        for worker in list(self._workers):
            if now > self._deadline(worker):
                self._lost(worker, killed=True)

    def _deadline(self, worker: _Worker) -> float:
        if not worker.ready:
            return worker.started + self.spec.start_timeout
        if not worker.inflight:
            return float("inf")
        if not worker.head_started():  # a message in transit, or a setup being built
            return worker.since + self.spec.start_timeout
        return worker.since + worker.inflight[0].budget

    def _receive(self, worker: _Worker) -> None:
        received, ended = 0, False
        try:
            while received < 16 * _READ_SIZE:  # what has arrived, in pipe-sized reads
                part = os.read(worker.recv_fd, _READ_SIZE)
                if not part:
                    ended = True
                    break
                worker.rbuf += part
                received += len(part)
        except BlockingIOError:
            pass
        if not received:
            if ended:  # the worker died
                self._lost(worker, killed=False)
            return
        worker.since = time.monotonic()
        for kind, payload in worker.frames():
            if kind == _ANSWER or kind == _FAILED:
                job = worker.inflight.popleft()
                (job_id,) = _ID.unpack_from(payload)
                if job_id != job.id:
                    raise RuntimeError(f"worker answered job {job_id}, expected {job.id}")
                if kind == _ANSWER:
                    self._outcomes.append(Outcome(job, answer=payload[_ID.size:]))
                else:
                    self._outcomes.append(Outcome(job, error=payload[_ID.size:].decode(errors="replace")))
            elif kind == _ACK:
                worker.unacked_jobs -= worker.unacked.popleft()
            elif kind == _READY:
                worker.ready = True
                self._failed_starts = 0

    def _lost(self, worker: _Worker, killed: bool) -> None:
        """Replace a dead (or overdue) worker: fail the job it was running, send the others again."""
        silent = time.monotonic() - worker.since
        self._selector.unregister(worker.recv_fd)
        if worker.wbuf:
            self._selector.unregister(worker.send_fd)
        how = worker.kill()
        self._workers.remove(worker)
        self._spawn()
        jobs = list(worker.inflight)
        if not worker.ready:
            self._failed_starts += 1
            self.submit(jobs, first=True)
            if self._failed_starts >= 3:
                self.close()
                raise RuntimeError(f"worker processes fail to start ({how}); see their stderr above")
            return
        self.restarts += 1
        if not jobs:
            return
        if worker.head_started():
            self._outcomes.append(Outcome(jobs[0], died=how, killed=killed, silent_s=silent))
            self.submit(jobs[1:], first=True)
            return
        taking = jobs[:worker.unacked[0]]  # the message it was taking: nothing of it ran
        if len(taking) > 1:
            for job in taking:
                job.alone = True
        else:
            taking[0].alone = True
            taking[0].lost += 1
            if taking[0].lost >= 2:
                self._outcomes.append(Outcome(taking[0], died=how, killed=killed, taking=True, silent_s=silent))
                jobs = jobs[1:]
        self.submit(jobs, first=True)
