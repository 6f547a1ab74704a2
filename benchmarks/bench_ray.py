"""The Ray backend's overhead against the local pool: executions per second and baseline scoring time.

1. *Executions*: the conformance workload (every published program on each of its inputs, one job
   per input, the executions that hit a limit left out, as in ``bench_execute.py``) repeated
   ``--copies`` times, run by a warm local :class:`~codeit.execution.executor.BatchExecutor` and by a
   warm :class:`~codeit.distributed.executor.RayExecutor` with the same number of worker processes
   (one actor per worker), alternately, ``--repeat`` times each.
2. *Baseline scoring*: ``--programs`` mutants of the published programs scored on the first
   ``--tasks`` evaluation tasks (the tests-first pass, one item per task) by a warm local
   :class:`~codeit.baseline.pool.BaselinePool` and by a warm
   :class:`~codeit.distributed.baseline.RayBaselinePool`, alternately.

Start-up (pool, or Ray instance and actors) is timed apart.  The load average is printed with every
figure: on a shared machine it says what else ran.  ``--ray-address local`` (the default) starts a
Ray instance on this machine (127.0.0.1 only); on a cluster give its address and ``--workers 2 4 8
16`` for a scaling figure (one line per number of workers).

Usage: ``python benchmarks/bench_ray.py [--data DIR] [--workers 2] [--repeat 3] [--copies 3]
[--programs 240] [--tasks 40] [--ray-address local] [--actor-cpus 1] [--chunk-size 256]``
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeit.baseline.generation import generate_mutants
from codeit.baseline.pipeline import BaselineSettings, load_inputs, mutators_in_use
from codeit.baseline.pool import BaselinePool, WorkerSettings
from codeit.baseline.scoring import TESTS, ScoreRequest
from codeit.distributed.baseline import RayBaselinePool
from codeit.distributed.cluster import RaySettings
from codeit.distributed.executor import RayExecutor
from codeit.execution.executor import BatchExecutor
from codeit.tasks import default_data_dir


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def conformance_jobs(data: Path, workers: int) -> list[tuple[str, list]]:
    """Every published program on each of its inputs, less the executions that hit a limit."""
    jobs = []
    for path in sorted(glob.glob(str(data / "training" / "*.json"))):
        task = json.loads(Path(path).read_text())
        jobs += [(task["program"], [example["input"]]) for example in task["training_examples"] + task["test_examples"]]
    with BatchExecutor(workers=workers) as pool:
        results = pool.run(jobs)
    return [job for job, result in zip(jobs, results) if not any(e and e.startswith(("timeout", "limit"))
                                                                  for e in result.errors)]


def executions(args: argparse.Namespace, data: Path, workers: int) -> None:
    jobs = conformance_jobs(data, workers) * args.copies
    per_actor = min(args.actor_cpus, workers)
    settings = RaySettings(address=args.ray_address, actors=max(1, workers // per_actor), actor_cpus=per_actor,
                           chunk_size=args.chunk_size)
    t0 = time.perf_counter()
    local = BatchExecutor(workers=workers).__enter__()
    local.run(jobs[:64])
    local_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray = RayExecutor(workers, settings=settings, log=lambda text: None).__enter__()
    ray.run(jobs[:64])
    ray_start = time.perf_counter() - t0
    rates: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        for _ in range(args.repeat):
            for name, executor in (("local", local), ("ray", ray)):
                t0 = time.perf_counter()
                results = executor.run(jobs)
                rates[name].append(len(results) / (time.perf_counter() - t0))
                print(f"  {name:5s} {rates[name][-1]:8.0f} executions/s ({load()})", flush=True)
        places = ray.actors.places
    finally:
        local.close()
        ray.close()
    best = {name: max(values) for name, values in rates.items()}
    mean = {name: statistics.mean(values) for name, values in rates.items()}
    print(f"executions, {workers} workers, {len(jobs)} jobs: local {best['local']:.0f}/s best, {mean['local']:.0f}/s "
          f"mean (start {local_start:.1f} s); ray {best['ray']:.0f}/s best, {mean['ray']:.0f}/s mean (start "
          f"{ray_start:.1f} s, actors {places}); ray/local {mean['ray'] / mean['local']:.2f} (mean), "
          f"{best['ray'] / best['local']:.2f} (best); {load()}", flush=True)


def scoring(args: argparse.Namespace, data: Path, workers: int) -> None:
    config = BaselineSettings(out="", samples=args.programs, data=str(data), workers=workers, max_tasks=args.tasks,
                              progress=False)
    seeds, evaluation, _ = load_inputs(config)
    plugins, _ = mutators_in_use(config)
    settings = WorkerSettings(config.limits, config.memoise, config.max_attempts, plugins)
    with BaselinePool(settings, workers, config.memory_mb, config.stall_timeout) as pool:
        programs = [m.program for m in generate_mutants(seeds, args.programs, pool, log=lambda m: None)]
    items = [(task.key, ScoreRequest(task, TESTS)) for task in evaluation]
    per_actor = min(args.actor_cpus, workers)
    ray_settings = RaySettings(address=args.ray_address, actors=max(1, workers // per_actor), actor_cpus=per_actor)
    local = BaselinePool(settings, workers, config.memory_mb, config.stall_timeout).__enter__()
    ray = RayBaselinePool(settings, workers, config.memory_mb, config.stall_timeout, ray_settings,
                          log=lambda text: None).__enter__()
    seconds: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        for rep in range(args.repeat):
            for name, pool in (("local", local), ("ray", ray)):
                found: list[str] = []
                t0 = time.perf_counter()
                pool.run(items, lambda key, answer, found=found: found.append(key),
                         lambda key, why: print(f"  {key} failed: {why}"), setup=((name, rep), programs))
                seconds[name].append(time.perf_counter() - t0)
                print(f"  {name:5s} {seconds[name][-1]:6.1f} s for {len(programs)} programs x {len(found)} tasks "
                      f"({load()})", flush=True)
    finally:
        local.close()
        ray.close()
    mean = {name: statistics.mean(values) for name, values in seconds.items()}
    best = {name: min(values) for name, values in seconds.items()}
    print(f"scoring, {workers} workers, {len(programs)} programs x {len(items)} tasks: local {mean['local']:.1f} s "
          f"mean ({best['local']:.1f} best); ray {mean['ray']:.1f} s mean ({best['ray']:.1f} best); throughput ray/local "
          f"{mean['local'] / mean['ray']:.2f} (mean), {best['local'] / best['ray']:.2f} (best); {load()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CodeIt data folder (default: $CODEIT_DATA or ../shared)")
    parser.add_argument("--workers", type=int, nargs="+", default=[len(os.sched_getaffinity(0))])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=3, help="copies of the conformance workload per run")
    parser.add_argument("--programs", type=int, default=240)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--ray-address", default="local")
    parser.add_argument("--actor-cpus", type=int, default=1, help="worker processes per actor")
    parser.add_argument("--chunk-size", type=int, default=256, help="executions per Ray call")
    parser.add_argument("--only", choices=("executions", "scoring"))
    args = parser.parse_args()
    data = Path(args.data or default_data_dir() or "")
    if not (data / "training").is_dir():
        sys.exit("the published CodeIt data is needed ($CODEIT_DATA or --data)")
    print(f"{os.cpu_count()} CPUs, {load()}")
    for workers in args.workers:
        if args.only in (None, "executions"):
            executions(args, data, workers)
        if args.only in (None, "scoring"):
            scoring(args, data, workers)


if __name__ == "__main__":
    main()
