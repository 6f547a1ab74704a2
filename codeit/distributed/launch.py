"""One run of a sweep, in a process of its own: the Sacred experiment's command line, plus two things a
sweep needs to know about its runs.

``python -m codeit.distributed.launch --runs-dir DIR --report FILE [--resume RUN_DIR] -- with smoke seed=1 ...``

* As soon as Sacred has given the run its id, ``FILE`` gets ``{"id", "dir", "pid", "host"}``: the
  sweep can then name the run, compare exactly its runs, and resume it if it is killed.
* ``--resume RUN_DIR`` (a killed attempt of the same run) adds ``resume_from=RUN_DIR`` when that
  folder holds something to resume (a checkpoint of the loop, the baseline's chunks and scores);
  else the run starts afresh.  Checked here, on the machine that runs it.

Everything else is a normal run of ``experiments/codeit.py``: the same observers (the file record
under ``DIR``, MongoDB with ``-m`` or ``$CODEIT_MONGO_URL``), the same output.  The process ends itself
(SIGKILL) when its parent goes away -- a lost Ray worker or node, a killed sweep -- so that a run is
never left going while the sweep starts it again elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import threading
import time
from pathlib import Path

from codeit.experiment import file_record_dir, make_experiment
from codeit.files import atomic_write
from codeit.run.checkpoint import CheckpointError, find_checkpoint

__all__ = ["main", "resumable"]


def resumable(run_dir: str | os.PathLike) -> bool:
    """Whether a killed run left something to resume: a checkpoint, or the baseline's folder."""
    run_dir = Path(run_dir)
    if (run_dir / "mutation_baseline" / "manifest.json").is_file():
        return True
    try:
        find_checkpoint(run_dir)
    except CheckpointError:
        return False
    return True


def _end_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="codeit-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m codeit.distributed.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", required=True, help="the file record's root folder")
    parser.add_argument("--report", required=True, help="where to write the run's id, folder and pid")
    parser.add_argument("--resume", help="the folder of a killed attempt of this run")
    parser.add_argument("sacred", nargs=argparse.REMAINDER, help="-- then the experiment's command line")
    args = parser.parse_args(argv)
    sacred = args.sacred[1:] if args.sacred[:1] == ["--"] else args.sacred
    if args.resume and resumable(args.resume):
        sacred = [*sacred, f"resume_from={args.resume}"] if "with" in sacred else [*sacred, "with",
                                                                                   f"resume_from={args.resume}"]
    _end_with_parent()
    ex = make_experiment(file_root=args.runs_dir)

    @ex.pre_run_hook
    def report(_run) -> None:
        folder = file_record_dir(_run)
        atomic_write(args.report, json.dumps({"id": _run._id, "dir": str(folder.resolve()) if folder else None,
                                              "pid": os.getpid(), "host": platform.node()}))

    ex.run_commandline(["codeit-sweep-run", *sacred])


if __name__ == "__main__":
    main()
