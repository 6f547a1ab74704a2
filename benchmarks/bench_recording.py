"""What recording costs: the ``smoke`` experiment with no observer, with the file record, and (when a
database is named) with the file record and MongoDB.

The runs alternate (none, files, files + MongoDB, none, ...) so that a machine that gets busier or
quieter affects every variant alike, after one uncounted warm-up run (imports, caches); each
variant's mean wall time is printed with its overhead over the unrecorded runs.  Every run has its own work folder (checkpoints are part of a run, not of
its recording) and the same seed.

Usage: ``python benchmarks/bench_recording.py [--repeats 3] [--mongo HOST:PORT:DB]`` (``--mongo``
defaults to ``$CODEIT_MONGO_URL``; ``scripts/mongo-server start`` runs a local server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeit.experiment import make_experiment


def one_run(variant: str, folder: Path, mongo: str | None, seed: int) -> float:
    file_root = None if variant == "none" else folder / "runs"
    ex = make_experiment(file_root=file_root, use_env=False, save_git_info=False)
    options = {"--capture": "sys"}
    if variant == "files+mongo":
        options["--mongo_db"] = mongo
    start = time.perf_counter()
    run = ex.run(named_configs=["smoke"], config_updates={"seed": seed, "work_dir": str(folder / "work")},
                 options=options)
    seconds = time.perf_counter() - start
    if run.status != "COMPLETED":
        raise SystemExit(f"{variant} run ended {run.status}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mongo", default=os.environ.get("CODEIT_MONGO_URL"),
                        help="database spec for the MongoDB variant (default: $CODEIT_MONGO_URL; none: skipped)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    variants = ["none", "files"] + (["files+mongo"] if args.mongo else [])
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        one_run("none", Path(tmp) / "warm-up", args.mongo, args.seed)  # imports, caches: not counted
        for r in range(args.repeats):
            for v in variants:
                folder = Path(tmp) / f"{v}-{r}"
                times[v].append(one_run(v, folder, args.mongo, args.seed))
                print(f"repeat {r + 1}/{args.repeats} {v:12s} {times[v][-1]:6.1f} s", flush=True)
    base = statistics.mean(times["none"])
    print(f"\nsmoke run, mean of {args.repeats} (start-up of the Python process not included):")
    for v in variants:
        mean = statistics.mean(times[v])
        print(f"  {v:12s} {mean:6.1f} s  overhead {100 * (mean - base) / base:+5.1f}%")


if __name__ == "__main__":
    main()
