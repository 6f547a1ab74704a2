"""Executor throughput on the conformance workload: every published program on each of its inputs.

One job = one program on one input (train and test examples of the 400 CodeIt training tasks).
A first pass with the paper's limits finds the executions that hit a limit (dropped intermediate
values, timeouts); they are removed from the timed workload, which is then run

- by :class:`~codeit.execution.executor.BatchExecutor` with 1 and with 2 workers, timing the whole thing
  (pool start and shutdown included, and again with a warm pool);
- in process by :func:`~codeit.execution.runner.run_program` (validation and limits, no isolation);
- as plain calls of the primitives: each published program turned into a Python function (the data
  is trusted; only this benchmark does that) and called on pre-converted inputs — the floor.

Wall-clock rates are the best of ``--repeat`` runs; CPU seconds (parent, and workers once reaped)
are printed too, because on a shared machine they vary less.  The DSL caches per-shape tables, so
repetitions in one process (in-process, bare calls, a warm pool) run warmer than a fresh pool.

Usage: ``python benchmarks/bench_execute.py [--data DIR] [--repeat N] [--profile]``; the data
folder defaults to ``$CODEIT_DATA``, else ``../shared/codeit-data`` beside the repository root.
"""

from __future__ import annotations

import argparse
import cProfile
import glob
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeit.dsl import NAMESPACE
from codeit.execution.executor import BatchExecutor
from codeit.execution.runner import CompileCache, run_program


def load_jobs(data: Path) -> list[tuple[str, str, tuple]]:
    """``(task key, program text, input grid)`` for every example of every training task."""
    jobs = []
    for path in sorted(glob.glob(str(data / "training" / "*.json"))):
        with open(path) as f:
            task = json.load(f)
        for example in task["training_examples"] + task["test_examples"]:
            grid = tuple(tuple(row) for row in example["input"])
            jobs.append((task["task_key"], task["program"], grid))
    return jobs


def native_solvers(jobs) -> dict[str, object]:
    """The published programs as Python functions, for the bare-call floor (trusted data only)."""
    solvers = {}
    for key, text, _ in jobs:
        if key not in solvers:
            scope = dict(NAMESPACE)
            exec(text, scope)  # noqa: S102 - benchmark floor on the published (trusted) programs
            solvers[key] = scope[f"solve_{key}"]
    return solvers


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process and of its finished (reaped) children, e.g. closed workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


CPU: dict[str, tuple[float, float]] = {}  # label -> (parent, workers) CPU seconds of the fastest repetition


def timed(fn, repeat: int, label: str) -> float:
    """Best wall time of ``repeat`` calls (CPU time of that repetition kept in :data:`CPU`)."""
    best = float("inf")
    for _ in range(repeat):
        cpu, start = cpu_seconds(), time.perf_counter()
        fn()
        wall = time.perf_counter() - start
        if wall < best:
            best, CPU[label] = wall, tuple(b - a for a, b in zip(cpu, cpu_seconds()))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("CODEIT_DATA") or str(ROOT.parent / "shared" / "codeit-data")
    parser.add_argument("--data", default=default, help="CodeIt data folder (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, best kept (default 3)")
    parser.add_argument("--profile", action="store_true", help="print the top primitives by own time")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "training").is_dir():
        print(f"no CodeIt data at {data} (use --data or CODEIT_DATA)", file=sys.stderr)
        return 2

    jobs = load_jobs(data)
    first = [run_program(text, [grid], keep_values=False) for _, text, grid in jobs]
    limited = [i for i, r in enumerate(first) if r.errors[0] and r.errors[0].split(":")[0] in ("limit", "timeout")]
    skip = set(limited)
    work = [job for i, job in enumerate(jobs) if i not in skip]
    batch = [(text, (grid,)) for _, text, grid in work]
    n = len(work)
    print(f"workload: {len(jobs)} executions of {len({k for k, _, _ in jobs})} programs; "
          f"{len(limited)} hit a limit and are excluded -> {n} timed executions")

    rates = {}
    for workers in (1, 2):
        def cold(workers=workers):
            with BatchExecutor(workers=workers) as pool:
                pool.run(batch)

        rates[f"{workers}w"] = n / timed(cold, args.repeat, f"{workers}w")
        with BatchExecutor(workers=workers) as pool:
            pool.run(batch[:200])
            rates[f"{workers}w warm"] = n / timed(lambda pool=pool: pool.run(batch), args.repeat, "")

    def in_process():
        cache = CompileCache()  # compile each program again, as a fresh worker must
        for text, grids in batch:
            run_program(cache.get(text), grids, keep_values=False)

    rates["in-process"] = n / timed(in_process, args.repeat, "in-process")
    solvers = native_solvers(work)
    calls = [(solvers[key], grid) for key, _, grid in work]

    def floor():
        for solve, grid in calls:
            try:
                solve(grid)
            except Exception:  # noqa: BLE001, S110 - e.g. caa06a1f's canvas of None
                pass

    rates["bare calls"] = n / timed(floor, args.repeat, "bare calls")

    for name, rate in rates.items():
        cpu = ""
        if CPU.get(name):
            parent, workers = CPU[name]
            cpu = f"   ({n / (parent + workers):5.0f} per CPU-second; CPU s: parent {parent:.2f}"
            cpu += f", workers {workers:.2f})" if workers else ")"
        print(f"{name:>12}: {rate:8.0f} executions/s{cpu}")
    overhead = rates["bare calls"] / rates["1w"]
    print(f"overhead vs bare calls: 1 worker {overhead:.2f}x (warm {rates['bare calls'] / rates['1w warm']:.2f}x), "
          f"in-process {rates['bare calls'] / rates['in-process']:.2f}x; "
          f"2 workers / 1 worker = {rates['2w'] / rates['1w']:.2f} (cpus: {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.1f})")

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        floor()
        profile.disable()
        print("\nbare calls, top functions by own time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)

    print(f"SUMMARY executions/s: 1 worker {rates['1w']:.0f}, 2 workers {rates['2w']:.0f}, "
          f"in-process {rates['in-process']:.0f}, bare calls {rates['bare calls']:.0f} "
          f"(overhead {overhead:.2f}x, {n} executions, {len(limited)} excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
