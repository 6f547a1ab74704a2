"""``codeit sweep``: a grid of named configs x seeds as normal Sacred runs, here or on a Ray cluster,
ending with the comparison of its runs (the table and curves of ``codeit compare``).

``codeit sweep --configs "smoke" "smoke a2_no_relabeling" --seeds 1 2 3 --set n_iterations=5
[--max-parallel 2] [--backend ray --ray-address HOST:PORT] [-m HOST:PORT:DB] [--runs-dir runs] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codeit.compare import compare_runs, markdown, write_comparison
from codeit.distributed.sweep import Sweep, plan, recorded_runs
from codeit.errors import UserError
from codeit.execution.backend import add_backend_arguments, ray_config

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("examples:\n"
                     '  codeit sweep --configs "smoke" "smoke a2_no_relabeling" --seeds 1 2 --set n_iterations=2\n'
                     '  codeit sweep --configs "codeit_data" "codeit_data a3_no_priority" --seeds 1 2 3 \\\n'
                     "      --backend ray --ray-address 10.0.0.1:6379 -m 10.0.0.1:27017:codeit --runs-dir /shared/runs\n"
                     "\nA run killed by a signal (or lost with its Ray node) is started again with resume_from its\n"
                     "checkpoint (--retries); the table at the end compares exactly the sweep's runs.")
    parser.add_argument("--configs", nargs="+", required=True, metavar="NAMED",
                        help='one entry per arm: named configs separated by spaces, e.g. "smoke a3_no_priority" '
                             '("" for the paper\'s defaults)')
    parser.add_argument("--seeds", nargs="+", type=int, required=True, metavar="SEED", help="the seeds of every arm")
    parser.add_argument("--set", dest="values", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config values for every run, as after Sacred's 'with' (e.g. n_iterations=5)")
    parser.add_argument("--max-parallel", type=int, metavar="N",
                        help="runs at once (default: as many as the CPUs allow here; every run at once on Ray, "
                             "as the cluster has room)")
    parser.add_argument("--retries", type=int, default=1, metavar="N",
                        help="start a killed run again up to N times, from its checkpoint (default: %(default)s)")
    parser.add_argument("--cpus-per-run", type=int, metavar="N",
                        help="CPUs a run reserves (default: the larger of its threads and execution.workers)")
    parser.add_argument("--gpus-per-run", type=float, metavar="N",
                        help="GPUs a run reserves (default: 1 when policy.device is cuda, else 0)")
    add_backend_arguments(parser, actors=False, what="where the runs run: processes on this machine (local) or "
                                                     "Ray tasks across a cluster (ray)")
    parser.add_argument("--mongo", "-m", metavar="SPEC",
                        help="record every run to this MongoDB too (HOST:PORT:DB or a mongodb:// URI), and read "
                             "the comparison from it")
    parser.add_argument("--runs-dir", default="runs", metavar="DIR",
                        help="the file record's root (on a cluster: a folder every node sees) (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR",
                        help="write the comparison (compare.md, compare.csv, runs.csv, compare.png), sweep.json "
                             "and each run's output (logs/) there")
    parser.add_argument("--control", metavar="ARM", help="the control arm's label, as the table shows it")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC", help="metrics to report (as codeit compare)")


def main(args: argparse.Namespace) -> int:
    cells = plan(args.configs, args.seeds, args.values)
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UserError("--max-parallel must be at least 1")
    out = Path(args.out) if args.out else None

    def log(text: str) -> None:
        print(text, flush=True)

    sweep = Sweep(cells, args.runs_dir, mongo=args.mongo, max_parallel=args.max_parallel, retries=args.retries,
                  cpus=args.cpus_per_run, gpus=args.gpus_per_run, logs=out / "logs" if out else None, log=log)
    if args.backend == "local":
        results = sweep.run()
    else:
        from codeit.distributed.cluster import RaySettings, connect

        with connect(RaySettings.from_config(ray_config(args))) as ray:
            results = sweep.run(ray)
    completed = sum(r.status == "COMPLETED" for r in results)
    log(f"sweep: {completed} of {len(results)} runs completed")
    runs, notes = recorded_runs(results, args.mongo)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps([
            {"run": " ".join(r.cell.named), "seed": r.cell.seed, "status": r.status, "run_id": r.run_id,
             "run_dir": r.run_dir, "attempts": r.attempts, "seconds": round(r.seconds, 1)} for r in results], indent=1))
    if runs:
        comparison = compare_runs(runs, metrics=args.metrics, control=args.control, notes=notes)
        sys.stdout.write(markdown(comparison))
        if out is not None:
            written = write_comparison(comparison, out)
            log(f"wrote {', '.join(str(p) for p in written.values())}")
    else:
        log("no run recorded metrics: nothing to compare" + "".join(f"\n  {n}" for n in notes))
    return 0 if completed == len(results) else 1
