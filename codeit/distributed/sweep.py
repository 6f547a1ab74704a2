"""A sweep: a grid of named configs x seeds (and config values), each cell a normal Sacred run.

A cell is ``with <named configs> seed=<s> <values>``, run by :mod:`codeit.distributed.launch` in a
process of its own -- on this machine (``backend="local"``: in sequence, or several at a time when the
CPUs allow) or as a Ray task anywhere in a cluster (``backend="ray"``), reserving the CPUs and GPUs
its config needs (:func:`cell_resources`).  Every run is recorded as a hand-typed run would be (the
file record under the runs folder, MongoDB with ``-m``), at most ``max_parallel`` run at once, and
each one's progress (start, meta-iterations, end) is reported as a line.

**Killed runs.**  A run whose process was killed (a signal: the OOM killer, a lost Ray worker or
node) is started again, at most ``retries`` times, with ``resume_from`` its killed attempt's folder
when that holds a checkpoint (the launch checks, where the run goes): it continues from its last
meta-iteration, and the killed attempt is marked INTERRUPTED.  A run that fails by itself (an error,
a bad config) is not started again.  In the end the sweep compares exactly its runs (their final
attempts), with :func:`codeit.compare.compare_runs`: the table and curves of ``codeit compare``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeit.config import NAMED_CONFIGS, PAPER_CONFIG, merge_config
from codeit.errors import UserError, did_you_mean
from codeit.execution.workers import available_cpus

__all__ = ["Cell", "CellResult", "Sweep", "cell_resources", "plan", "recorded_runs", "resolve_config", "run_cell"]

#: output lines of a run that are its progress (the loop's iteration summary, the baseline's result)
PROGRESS_PREFIXES = ("iteration ", "solve rate at ", "resumed from ")
#: what a finished run's ``ended`` event keeps of its output, for the sweep's report of a failure
TAIL_LINES = 15


@dataclass(frozen=True)
class Cell:
    """One run of the grid: named configs (in order), a seed, config values (``key=value``)."""

    named: tuple[str, ...]
    seed: int
    values: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return " ".join([*self.named, f"seed={self.seed}"])

    def argv(self, extra: Sequence[str] = (), mongo: str | None = None) -> list[str]:
        """The experiment's command line for this cell (``extra``: values the sweep adds)."""
        return ["with", *self.named, f"seed={self.seed}", *self.values, *extra, *(["-m", mongo] if mongo else [])]


@dataclass
class CellResult:
    """What became of a cell: its final attempt's run id and folder, status and output's end."""

    cell: Cell
    status: str = "PENDING"  # COMPLETED, FAILED, KILLED
    run_id: Any = None
    run_dir: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    host: str | None = None
    tail: list[str] = field(default_factory=list)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def resolve_config(named: Sequence[str], values: Sequence[str]) -> dict[str, Any]:
    """The config a cell's run gets (enough of it to size the run): the paper's, the named configs'
    updates in order, then the values (dotted keys)."""
    config = merge_config(PAPER_CONFIG, {})
    for name in named:
        config = merge_config(config, NAMED_CONFIGS[name][0])
    for item in values:
        key, _, text = item.partition("=")
        target = config
        *parents, last = key.strip().split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            target[last] = _value(text)
    return config


def plan(configs: Sequence[str], seeds: Sequence[int], values: Sequence[str] = ()) -> list[Cell]:
    """The grid: each entry of ``configs`` (named configs separated by spaces; ``""`` for the paper's
    defaults) with each seed.  Unknown named configs and values without ``=`` are a :class:`UserError`."""
    if not configs or not seeds:
        raise UserError("a sweep needs at least one entry of --configs and one --seeds")
    for item in values:
        if "=" not in item or item.startswith("="):
            raise UserError(f"--set {item!r}: expected KEY=VALUE (e.g. n_iterations=5)")
        if item.split("=", 1)[0].strip() in ("seed", "resume_from"):
            raise UserError(f"--set {item.split('=', 1)[0]}: the sweep sets it (use --seeds)")
    cells = []
    for entry in configs:
        named = tuple(entry.split())
        for name in named:
            if name not in NAMED_CONFIGS:
                raise UserError(f"no named config {name!r}{did_you_mean(name, NAMED_CONFIGS)}"
                                + f"; the named configs are: {', '.join(NAMED_CONFIGS)}")
        cells += [Cell(named, int(seed), tuple(values)) for seed in seeds]
    if len({c.label + repr(c.values) for c in cells}) < len(cells):
        raise UserError("the grid names the same run twice (repeated --configs entry or seed)")
    return cells


def cell_resources(cell: Cell, cpus: int | None = None, gpus: float | None = None, *,
                   pin_workers: bool = False) -> tuple[int, float, list[str]]:
    """``(CPUs, GPUs, extra values)`` of a cell's run: CPUs the larger of ``threads`` (torch) and
    ``execution.workers`` (sandboxed workers; the two phases take turns), a GPU when
    ``policy.device`` is CUDA; ``cpus``/``gpus`` override.  ``pin_workers``: a run whose workers are
    unset ("all CPUs") gets ``execution.workers`` = its CPUs, so that runs sharing a node do not
    overcommit it (an extra value)."""
    config = resolve_config(cell.named, cell.values)
    threads = config.get("threads") or 1
    workers = config["execution"].get("workers")
    need = int(cpus) if cpus is not None else max(int(threads), int(workers or (1 if pin_workers else available_cpus())))
    device = str(config["policy"].get("device") or "")
    if gpus is None:
        gpus = 1.0 if config.get("pipeline", "codeit") == "codeit" and device.startswith("cuda") else 0.0
    extra = [f"execution.workers={need}"] if pin_workers and workers is None else []
    return max(1, need), float(gpus), extra


# --------------------------------------------------------------------------------------------------
# one run, where it runs (this machine, or a Ray task)


def run_cell(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Run one attempt of a cell (``spec``: ``argv``, ``runs_dir``, ``resume``, ``env``, ``cwd``,
    ``log``) in a launch process; yields its events: ``started`` (run id, folder, pid, host),
    ``progress`` (a line) and, last, ``ended`` (exit code and the output's last lines)."""
    env = {**os.environ, **spec.get("env", {})}
    cwd = spec.get("cwd") if spec.get("cwd") and os.path.isdir(spec["cwd"]) else None
    with tempfile.TemporaryDirectory(prefix="codeit-sweep-") as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "codeit.distributed.launch", "--runs-dir", str(spec["runs_dir"]),
                   "--report", str(report)]
        if spec.get("resume"):
            command += ["--resume", str(spec["resume"])]
        command += ["--", *spec["argv"]]
        log_path = Path(spec["log"]) if spec.get("log") else Path(tmp) / "output.log"
        with contextlib.suppress(OSError):
            log_path.parent.mkdir(parents=True, exist_ok=True)
        if not log_path.parent.is_dir():
            log_path = Path(tmp) / "output.log"
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        started = False
        with open(log_path, "a", encoding="utf-8") as log:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True, errors="replace",
                                    bufsize=1)
            try:
                for line in proc.stdout:
                    log.write(line)
                    line = line.rstrip("\n").split("\r")[-1]
                    if line.strip():
                        tail.append(line)
                    if not started and report.is_file():
                        started = True
                        yield {"event": "started", **json.loads(report.read_text())}
                    if line.startswith(PROGRESS_PREFIXES):
                        yield {"event": "progress", "line": line}
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if not started and report.is_file():
            yield {"event": "started", **json.loads(report.read_text())}
        yield {"event": "ended", "code": code, "tail": list(tail)}


# --------------------------------------------------------------------------------------------------
# runners: where attempts go, and the events that come back


@dataclass
class _Attempt:
    index: int  # the cell's number in the grid
    number: int  # 1 for the first attempt
    spec: dict[str, Any]
    cpus: int
    gpus: float
    started: float = field(default_factory=time.monotonic)


class _LocalRunner:
    """Attempts as processes of this machine, each watched by a thread."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.running = 0

    def submit(self, attempt: _Attempt) -> None:
        self.running += 1

        def work() -> None:
            try:
                for event in run_cell(attempt.spec):
                    self.events.put((attempt, event))
            except BaseException as err:  # noqa: BLE001 - reported as the attempt's end
                self.events.put((attempt, {"event": "ended", "code": 1, "tail": [f"{type(err).__name__}: {err}"]}))

        threading.Thread(target=work, name=f"codeit-sweep-{attempt.index}", daemon=True).start()

    def poll(self, timeout: float) -> list[tuple[_Attempt, dict[str, Any]]]:
        out = []
        with contextlib.suppress(queue.Empty):
            out.append(self.events.get(timeout=timeout))
            while True:
                out.append(self.events.get_nowait())
        self.running -= sum(1 for _, e in out if e["event"] in ("ended", "lost"))
        return out

    def close(self) -> None:
        pass


class _RayRunner:
    """Attempts as Ray tasks (streaming their events), each reserving its CPUs and GPUs."""

    def __init__(self, ray: Any) -> None:
        from codeit.distributed.dispatch import lost_errors

        self.ray = ray
        self.task = ray.remote(run_cell)
        self.lost = lost_errors(ray)
        self.streams: dict[Any, _Attempt] = {}

    @property
    def running(self) -> int:
        return len(self.streams)

    def submit(self, attempt: _Attempt) -> None:
        stream = self.task.options(num_cpus=attempt.cpus, num_gpus=attempt.gpus, max_retries=0,
                                   num_returns="streaming").remote(attempt.spec)
        self.streams[stream] = attempt

    def poll(self, timeout: float) -> list[tuple[_Attempt, dict[str, Any]]]:
        if not self.streams:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self.streams), num_returns=1, timeout=timeout)
        out = []
        for stream in ready:
            attempt = self.streams[stream]
            try:
                event = self.ray.get(next(stream))
            except StopIteration:
                event = {"event": "ended", "code": 1, "tail": ["the task ended without a result"]}
            except self.lost as err:
                event = {"event": "lost", "why": f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"}
            if event["event"] in ("ended", "lost"):
                del self.streams[stream]
            out.append((attempt, event))
        return out

    def close(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(Exception):
                self.ray.cancel(stream, force=True)
        self.streams.clear()


# --------------------------------------------------------------------------------------------------
# the sweep


class Sweep:
    """Run the cells (module docstring); :meth:`run` returns their results in grid order.

    ``runs_dir``: the file record's root (on a cluster: a folder every node sees, for resuming and
    for the comparison from files).  ``mongo``: ``-m`` for every run.  ``max_parallel``: runs at once
    (None: as many as fit).  ``logs``: a folder for each attempt's full output.
    """

    def __init__(self, cells: Sequence[Cell], runs_dir: str | os.PathLike, *, mongo: str | None = None,
                 max_parallel: int | None = None, retries: int = 1, cpus: int | None = None,
                 gpus: float | None = None, logs: str | os.PathLike | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.cells = list(cells)
        self.runs_dir = Path(runs_dir).resolve()
        self.mongo = mongo
        self.max_parallel = max_parallel
        self.retries = max(0, retries)
        self.cpus, self.gpus = cpus, gpus
        self.logs = Path(logs).resolve() if logs else None
        self.log = log
        self.results = [CellResult(cell) for cell in self.cells]

    def run(self, ray: Any = None) -> list[CellResult]:
        """Run every cell on this machine, or as Ray tasks on ``ray``'s cluster (connected)."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        sized = [cell_resources(cell, self.cpus, self.gpus, pin_workers=ray is not None) for cell in self.cells]
        if ray is None:
            runner: Any = _LocalRunner()
            limit = self.max_parallel or self._local_parallel(sized)
            env: dict[str, str] = {}
        else:
            runner = _RayRunner(ray)
            self._check_fits(ray, sized)
            limit = self.max_parallel or len(self.cells)
            env = {k: v for k, v in os.environ.items() if k.startswith("CODEIT_")}
        where = "on this machine" if ray is None else "as Ray tasks"
        self.log(f"sweep: {len(self.cells)} runs {where}, at most {limit} at a time; file record under "
                 f"{self.runs_dir}" + (f", MongoDB {self.mongo}" if self.mongo else ""))
        todo: deque[_Attempt] = deque()
        for index, (cell, (cpus, gpus, extra)) in enumerate(zip(self.cells, sized)):
            todo.append(_Attempt(index, 1, self._spec(index, cell, extra, env, None, 1), cpus, gpus))
        try:
            while todo or runner.running:
                while todo and runner.running < limit:
                    attempt = todo.popleft()
                    attempt.started = time.monotonic()
                    self.results[attempt.index].attempts = attempt.number
                    runner.submit(attempt)
                for attempt, event in runner.poll(1.0):
                    retry = self._handle(attempt, event)
                    if retry is not None:
                        todo.appendleft(retry)
        finally:
            runner.close()
        return self.results

    # -- internals ----------------------------------------------------------------------------
    def _spec(self, index: int, cell: Cell, extra: Sequence[str], env: Mapping[str, str], resume: str | None,
              number: int) -> dict[str, Any]:
        log = None
        if self.logs is not None:
            name = "-".join([*cell.named, f"seed{cell.seed}"]) or f"cell{index}"
            log = str(self.logs / f"{index:03d}-{name}-attempt{number}.log")
        return {"argv": cell.argv(extra, self.mongo), "runs_dir": str(self.runs_dir), "resume": resume,
                "env": dict(env), "cwd": os.getcwd(), "log": log, "extra": list(extra)}

    def _local_parallel(self, sized: Sequence[tuple[int, float, list[str]]]) -> int:
        if any(gpus for _, gpus, _ in sized):
            return 1
        return max(1, available_cpus() // max(cpus for cpus, _, _ in sized))

    def _check_fits(self, ray: Any, sized: Sequence[tuple[int, float, list[str]]]) -> None:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        for cell, (cpus, gpus, _) in zip(self.cells, sized):
            if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
                largest = max((r.get("CPU", 0) for r in nodes), default=0)
                raise UserError(f"run {cell.label!r} needs {cpus} CPU(s)" + (f" and {gpus:g} GPU(s)" if gpus else "")
                                + f" on one node; no node of the cluster has that (the largest has {largest:g} "
                                  "CPUs): use --cpus-per-run / --gpus-per-run")

    def _say(self, attempt: _Attempt, text: str) -> None:
        done = sum(r.status in ("COMPLETED", "FAILED", "KILLED") for r in self.results)
        self.log(f"[{done}/{len(self.cells)}] {self.cells[attempt.index].label}: {text}")

    def _handle(self, attempt: _Attempt, event: Mapping[str, Any]) -> _Attempt | None:
        """Report an event; the next attempt when a killed run is to be started again."""
        result = self.results[attempt.index]
        kind = event["event"]
        if kind == "started":
            run_id = event.get("id")
            result.run_id = int(run_id) if str(run_id).isdigit() else run_id  # the file record's ids are text
            result.run_dir, result.host = event.get("dir"), event.get("host")
            resumed = " (resuming its killed attempt)" if attempt.spec.get("resume") else ""
            self._say(attempt, f"run {result.run_id} started on {result.host} (pid {event.get('pid')}){resumed}")
            return None
        if kind == "progress":
            self._say(attempt, event["line"])
            return None
        result.seconds += time.monotonic() - attempt.started
        if kind == "ended":
            result.tail = list(event.get("tail") or [])
            code = int(event["code"])
            if code == 0:
                result.status = "COMPLETED"
                self._say(attempt, f"COMPLETED in {result.seconds:.0f} s (run {result.run_id})")
                return None
            if code > 0:
                result.status = "FAILED"
                last = next((line for line in reversed(result.tail) if line.strip()), "")
                self._say(attempt, f"FAILED (exit {code}) after {result.seconds:.0f} s: {last}")
                return None
            why = f"killed by signal {-code}"
        else:
            why = f"lost with its Ray worker or node ({event.get('why')})"
        if attempt.number > self.retries:
            result.status = "KILLED"
            self._say(attempt, f"{why}; not started again (--retries {self.retries})")
            return None
        resume = result.run_dir
        self._say(attempt, f"{why}; attempt {attempt.number + 1} of {self.retries + 1}"
                  + (f", resuming {resume} if it has a checkpoint" if resume else ", from the start"))
        cell = self.cells[attempt.index]
        spec = self._spec(attempt.index, cell, attempt.spec["extra"], attempt.spec["env"], resume, attempt.number + 1)
        return _Attempt(attempt.index, attempt.number + 1, spec, attempt.cpus, attempt.gpus)


def recorded_runs(results: Sequence[CellResult], mongo: str | None = None) -> tuple[list[Any], list[str]]:
    """The records of the sweep's runs (each cell's final attempt), from MongoDB when the runs were
    recorded there (every node's runs are), else from their file records; and notes on those missing."""
    from codeit.compare import read_mongo_runs
    from codeit.compare.records import RecordError, read_run_folder

    notes = [f"{r.cell.label}: {r.status}" + (f" ({r.tail[-1]})" if r.tail and r.status != "COMPLETED" else "")
             for r in results if r.status != "COMPLETED"]
    if mongo:
        ids = {r.run_id for r in results if r.run_id is not None}
        runs, left_out = read_mongo_runs(mongo, lambda number: number in ids)
        return runs, notes + left_out
    runs = []
    for r in results:
        if r.run_dir is None:
            continue
        try:
            runs.append(read_run_folder(r.run_dir))
        except RecordError as err:
            notes.append(f"{r.cell.label}: run {r.run_id} left out: {err}")
    return runs, notes
