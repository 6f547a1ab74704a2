"""Comparing recorded runs: the ablation table and curves, from file records or MongoDB.

``codeit compare`` (:mod:`codeit.compare.cli`) and a sweep share one path::

    from codeit.compare import compare_runs, read_file_runs, write_comparison
    runs, notes = read_file_runs("runs")                 # or read_mongo_runs("127.0.0.1:27017:codeit")
    comparison = compare_runs(runs, control="smoke", notes=notes)
    write_comparison(comparison, "results/ablations")    # compare.md, compare.csv, runs.csv, compare.png

The parts: :mod:`~codeit.compare.records` (the :class:`RunRecord` and the file reader),
:mod:`~codeit.compare.mongo` (the MongoDB reader), :mod:`~codeit.compare.selection` (which runs),
:mod:`~codeit.compare.arms` (arms, statistics, the control), :mod:`~codeit.compare.report`
(Markdown and CSV), :mod:`~codeit.compare.plot` (the curves).  Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

from codeit.compare.arms import Arm, Comparison, Difference, Stat, compare_runs
from codeit.compare.records import RunRecord, read_file_runs, read_run_folder
from codeit.compare.report import markdown, write_comparison
from codeit.compare.selection import Selection, drop_resumed

__all__ = ["Arm", "Comparison", "Difference", "RunRecord", "Selection", "Stat", "compare_runs", "drop_resumed",
           "markdown", "read_file_runs", "read_mongo_runs", "read_run_folder", "write_comparison"]


def read_mongo_runs(spec: str, keep_id: Callable[[int], bool] | None = None, *, timeout_ms: int = 5000
                    ) -> tuple[list[RunRecord], list[str]]:
    """:func:`codeit.compare.mongo.read_mongo_runs`, imported on use (pymongo and Sacred take a
    moment to import, and reading file records needs neither)."""
    from codeit.compare import mongo

    return mongo.read_mongo_runs(spec, keep_id, timeout_ms=timeout_ms)
