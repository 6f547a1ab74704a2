"""The mutation baseline's report (docs/mutation.md, step 4): the solve-rate curve and its files.

Per task, the candidate programs are ranked by the top-3 rule (:mod:`codeit.scoring`: demonstration
accuracy, then length); the task counts as solved at ``n`` mutated programs if one of the top 3 among
the first ``n`` solves the test examples (:func:`solve_curve`).  :func:`write_report` writes
``OUT/performance.csv`` (``samples,solve_rate`` rows without header, every ``curve_step``, the shape of
the published ``mutation_performance.csv``), ``performance.png`` (with the published curve where the
CodeIt data is at hand), ``solutions.json`` and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codeit.baseline.scoring import CandidateRecord
from codeit.encoding import estimate_tokens
from codeit.files import atomic_write
from codeit.scoring import Candidate, top_k
from codeit.scoring import rank as rank_candidates

__all__ = ["curve_figure", "read_published", "solve_curve", "write_report"]


def _candidate(record: CandidateRecord) -> Candidate:
    demos, tests = record.demos, record.tests
    return Candidate(record.program, sum(demos) / len(demos) if demos else 0.0, bool(tests) and all(tests),
                     estimate_tokens(record.program))


def solve_curve(solutions: Mapping[str, Sequence[CandidateRecord]], n_tasks: int,
                checkpoints: Sequence[int]) -> list[tuple[int, float]]:
    """``(n, solve rate)`` per checkpoint: a task is solved at ``n`` if one of the top 3 (by the
    top-3 rule: demonstration accuracy, then length) of its candidate programs with index ``< n``
    solves every test example.  ``solutions`` maps a task key to its candidates."""
    curve = []
    for n in checkpoints:
        solved = 0
        for records in solutions.values():
            pool = [_candidate(CandidateRecord(*r)) for r in records if r[0] < n]
            if any(c.test_correct for c in top_k(pool)):
                solved += 1
        curve.append((n, solved / n_tasks if n_tasks else 0.0))
    return curve


def read_published(folder: str | Path | None) -> list[tuple[int, float]]:
    """The published curve, ``mutation_performance.csv`` of a CodeIt data folder (empty if absent)."""
    path = Path(folder) / "mutation_performance.csv" if folder else None
    if path is None or not path.exists():
        return []
    rows = []
    for line in path.read_text().split():
        n, rate = line.split(",")
        rows.append((int(n), float(rate)))
    return rows


def curve_figure(curve: Sequence[tuple[int, float]], published: Sequence[tuple[int, float]], title: str) -> Any:
    """The solve-rate curve (and the published one, up to twice its first point or this run's end)
    as a matplotlib figure; the rate axis starts at 0, so that a short run reads against the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    top = max((n for n, _ in curve), default=0)
    rates = [100 * r for _, r in curve]
    if curve:
        ax.plot([n for n, _ in curve], rates, marker="o", markersize=4, label="this run")
        n, rate = curve[-1]
        ax.annotate(f"{100 * rate:.2f}%", (n, 100 * rate), textcoords="offset points", xytext=(4, 6))
    if published:
        pts = [(n, r) for n, r in published if n <= max(top, 2 * published[0][0])]
        ax.plot([n for n, _ in pts], [100 * r for _, r in pts], marker="x", linestyle="--",
                label="published (CodeIt)")
        rates += [100 * r for _, r in pts]
    ax.set_ylim(0, max([1.0, *rates]) * 1.15)
    ax.set_xlim(left=0)
    ax.set_xlabel("mutated programs")
    ax.set_ylabel("evaluation tasks solved (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def write_report(out: Path, solutions: Mapping[str, Sequence[CandidateRecord]], n_tasks: int,
                 parents: Mapping[int, str], upto: int, curve_step: int, published: Sequence[tuple[int, float]],
                 title: str, timings: Mapping[str, Any]) -> dict[str, Any]:
    """Write the report of the first ``upto`` mutated programs; returns the summary
    (``summary.json``: samples, solve rate, solved, evaluation tasks, tasks with candidates, the curve
    and ``timings``)."""
    step = max(1, curve_step)
    checkpoints = list(range(step, upto + 1, step))
    if not checkpoints or checkpoints[-1] != upto:
        checkpoints.append(upto)
    curve = solve_curve(solutions, n_tasks, checkpoints) if upto else []
    atomic_write(out / "performance.csv", "".join(f"{n},{r:g}\n" for n, r in curve))
    with contextlib.suppress(Exception):  # no plot (e.g. matplotlib missing) is no reason to stop
        import matplotlib.pyplot as plt

        fig = curve_figure(curve, published, title)
        fig.savefig(out / "performance.png", dpi=110)
        plt.close(fig)
    report: dict[str, Any] = {}
    for key in sorted(solutions):
        records = [r for r in solutions[key] if r[0] < upto]
        ranked = {c.program: rank for rank, c in enumerate(rank_candidates([_candidate(r) for r in records]))}
        records.sort(key=lambda r: ranked[r[1]])
        report[key] = [{"program": text, "index": index, "parent": parents.get(index),
                        "demo_accuracy": sum(demos) / len(demos), "demo": demos, "test": tests,
                        "top3": ranked[text] < 3}
                       for index, text, demos, tests in records]
    atomic_write(out / "solutions.json", json.dumps(report, indent=1))
    rate = curve[-1][1] if curve else 0.0
    summary = {"samples": upto, "solve_rate": rate, "solved": round(rate * n_tasks), "evaluation_tasks": n_tasks,
               "tasks_with_candidates": len(report), "curve": curve, **timings}
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    return summary
