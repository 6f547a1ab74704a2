"""Observer ``artifacts``: the files a run leaves for people to read.

After each meta-iteration: ``solutions_<i>.json`` (the first solution of every solved task so far,
and each task's top-3 candidates of the iteration and overall) and ``programs_<i>.jsonl.gz`` (every
program executed for a search task, with its demonstration accuracy).  At the end of the run:
``performance.csv`` (one row per meta-iteration, counted from 1 as the console does) and
``solve_rate.png``.  ``i`` counts from 0, as the hooks do.  ``config["artifacts"]`` switches the
per-iteration files off (``programs: false``, ``solutions: false``); ``plugins.disable=["artifacts"]``
switches the plugin off.  Files go through ``run.add_artifact`` (the Sacred record, or
``<work dir>/outputs/``).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import logging
from collections.abc import Mapping
from typing import Any

from codeit.config import section
from codeit.scoring import top_k

logger = logging.getLogger(__name__)

#: the columns of performance.csv
PERFORMANCE_FIELDS = ["iteration", "programs_total", "solve_rate", "solve_rate_cumulative", "solve_rate_policy_only",
                      "demo_solve_rate", "demo_solve_rate_cumulative", "policy_best_demo_accuracy",
                      "policy_best_demo_accuracy_now", "policy_best_similarity", "policy_best_similarity_now", "solved",
                      "solved_cumulative", "solved_policy_only", "buffer_size", "train_loss"]


def solutions_document(iteration: int, results: Any, state: Any) -> dict[str, Any]:
    """The content of ``solutions_<i>.json``."""
    tasks = {}
    for key in sorted(set(results.found) | set(state.candidates)):
        tasks[key] = {"iteration_top3": [dataclasses.asdict(c) for c in top_k(results.found.get(key, {}).values())],
                      "cumulative_top3": [dataclasses.asdict(c) for c in top_k(state.candidates.get(key, {}).values())]}
    return {"iteration": iteration, "solutions": state.solutions, "tasks": tasks}


def performance_csv(history: list[Mapping[str, float]]) -> str:
    """One row per meta-iteration (from 1): the solve rates and the programs sampled so far."""
    out = io.StringIO()
    writer = csv.DictWriter(out, PERFORMANCE_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for i, metrics in enumerate(history):
        writer.writerow({**metrics, "iteration": i + 1})
    return out.getvalue()


def solve_rate_png(history: list[Mapping[str, float]], n_tasks: int) -> bytes | None:
    """The solve-rate curves (per iteration, cumulative, policy only) as a PNG."""
    try:
        from matplotlib.figure import Figure  # not pyplot: no GUI backend, a quicker import
        from matplotlib.ticker import MaxNLocator
    except ImportError:  # pragma: no cover
        return None
    x = list(range(1, len(history) + 1))
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for name, label in [("solve_rate_cumulative", "cumulative"), ("solve_rate_policy_only", "policy only"),
                        ("solve_rate", "this iteration")]:
        ax.plot(x, [100 * h.get(name, 0.0) for h in history], marker="o", markersize=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"solved search tasks (%, of {n_tasks})")
    ax.set_title("CodeIt solve rate (top-3)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def codeit_iteration_end(iteration: int, results: Any, run: Any, config: Mapping[str, Any]) -> None:
    """Write the iteration's solutions and programs."""
    options = section(config, "artifacts")
    if options.get("solutions", True):
        doc = solutions_document(iteration, results, run.state)
        run.add_artifact(f"solutions_{iteration}.json", json.dumps(doc, indent=1, sort_keys=True).encode())
    if options.get("programs", True):
        text = "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in results.programs)
        run.add_artifact(f"programs_{iteration}.jsonl.gz", gzip.compress(text.encode(), mtime=0))


def codeit_run_end(run: Any) -> None:
    """Write the solve-rate table and plot of the whole run (never hiding the run's own outcome)."""
    history = run.state.history
    if not history:
        return
    try:
        run.add_artifact("performance.csv", performance_csv(history).encode())
        png = solve_rate_png(history, len(run.search_tasks))
        if png is not None:
            run.add_artifact("solve_rate.png", png)
    except Exception as err:  # noqa: BLE001 - a broken plot must not fail a finished run
        logger.warning("could not write the final artifacts: %s: %s", type(err).__name__, err)
