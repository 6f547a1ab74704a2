"""A comparison as text and files: the Markdown table, ``compare.csv`` (one row per arm),
``runs.csv`` (one row per run) and, with :mod:`codeit.compare.plot`, ``compare.png``.

The Markdown is for reading (rates and accuracies in per cent, rounded); the CSV files carry the
unrounded numbers, as fractions, for anything that computes further.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from codeit.compare.arms import Arm, Comparison, Stat, is_fraction
from codeit.files import atomic_write

__all__ = ["SPREAD_RULE", "arm_rows", "markdown", "run_rows", "write_comparison"]

SPREAD_RULE = ("difference of means, arm - control; *higher*/*lower* when it exceeds the spread, "
               "the sum of the two arms' standard deviations (their mean ± std intervals do not overlap)")


def number(value: float | None, metric: str) -> str:
    """A value as the table shows it: fractions in per cent, two decimals (small values: 2 digits)."""
    if value is None:
        return "–"
    if is_fraction(metric):
        value *= 100
    if value != 0 and abs(value) < 0.01:
        return f"{value:.2g}"
    if not is_fraction(metric) and float(value).is_integer():
        return f"{value:.0f}"  # a count
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def _cell(stat: Stat, metric: str, n_runs: int) -> str:
    if stat.mean is None:
        return "–"
    text = number(stat.mean, metric) + ("" if stat.std is None else f" ± {number(stat.std, metric)}")
    return text if stat.n == n_runs else f"{text} (n={stat.n})"


def _header(metric: str) -> str:
    return f"{metric} (%)" if is_fraction(metric) else metric


def _iterations(arm: Arm) -> str:
    low, high = arm.iterations
    return str(low) if low == high else f"{low}-{high}"


def _seed_order(seed: Any) -> tuple:
    numeric = isinstance(seed, (int, float)) and not isinstance(seed, bool)
    return (seed is None, not numeric, seed if numeric else str(seed))


def _seeds(arm: Arm) -> str:
    """The arm's seeds in order (runs of a parallel sweep get their ids in the order they start)."""
    return ", ".join("?" if s is None else str(s) for s in sorted(arm.seeds, key=_seed_order))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _table(header: list[str], rows: list[list[str]], numbers: range) -> list[str]:
    """A Markdown table; the columns in ``numbers`` are right-aligned."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    align = ["---:" if i in numbers else "---" for i in range(len(header))]
    return [line(header), line(align), *map(line, rows)]


def markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: the arms table, the table against the control, notes."""
    c = comparison
    lines = [f"## {_count(len(c.runs), 'run')} in {_count(len(c.arms), 'arm')}", "",
             ("Each metric's final value (at a run's last meta-iteration), mean ± sample std (n - 1) over the "
              "arm's runs; rates and accuracies in %."), ""]
    header = ["arm", "seeds", "runs", "iterations", *map(_header, c.metrics), "notes"]
    rows = [[arm.label + (" (control)" if arm is c.control else ""), _seeds(arm), str(len(arm.runs)),
             _iterations(arm), *(_cell(arm.stat(m), m, len(arm.runs)) for m in c.metrics),
             "; ".join(arm.notes(c.metrics))] for arm in c.arms]
    lines += _table(header, rows, numbers=range(2, len(header) - 1))
    if c.control is not None:
        lines += ["", f"### Against the control `{c.control.label}`", "", SPREAD_RULE[0].upper() + SPREAD_RULE[1:]
                  + ".", ""]
        rows = []
        for arm in c.arms:
            if arm is c.control:
                continue
            cells = []
            for metric in c.metrics:
                d = c.against_control(arm, metric)
                if d is None or d.diff is None:
                    cells.append("–")
                    continue
                sign = "-" if d.diff < 0 else "+"
                diff = sign + number(abs(d.diff), metric)
                if d.spread is None:
                    cells.append(f"{diff} (no spread: an arm has one run)")
                else:
                    cells.append(f"{diff} (spread {number(d.spread, metric)}): {d.verdict}")
            rows.append([arm.label, *cells])
        lines += _table(["arm", *(f"Δ {_header(m)}" for m in c.metrics)], rows, numbers=range(1, len(c.metrics) + 1))
    if c.notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in c.notes)]
    return "\n".join(lines) + "\n"


def arm_rows(comparison: Comparison) -> list[dict[str, object]]:
    """One row per arm: runs, seeds, iterations, statuses, and per metric mean, std, n (and with a
    control: the difference, the spread and the verdict)."""
    c = comparison
    rows = []
    for arm in c.arms:
        low, high = arm.iterations
        statuses: dict[str, int] = {}
        for run in arm.runs:
            statuses[run.status] = statuses.get(run.status, 0) + 1
        row: dict[str, object] = {"arm": arm.label, "control": arm is c.control, "runs": len(arm.runs),
                                  "seeds": " ".join(str(s) for s in arm.seeds),
                                  "run_ids": " ".join(run.id for run in arm.runs),
                                  "iterations_min": low, "iterations_max": high,
                                  "statuses": " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))}
        for metric in c.metrics:
            stat = arm.stat(metric)
            row.update({f"{metric}_mean": stat.mean, f"{metric}_std": stat.std, f"{metric}_n": stat.n})
            if c.control is not None:
                d = c.against_control(arm, metric)
                row.update({f"{metric}_diff": None if d is None else d.diff,
                            f"{metric}_spread": None if d is None else d.spread,
                            f"{metric}_verdict": "" if d is None else d.verdict})
        row["notes"] = "; ".join(arm.notes(c.metrics))
        rows.append(row)
    return rows


def run_rows(comparison: Comparison) -> list[dict[str, object]]:
    """One row per run: its arm, id, status, seed, length, named configs and final metric values."""
    return [{"arm": arm.label, "id": run.id, "status": run.status, "seed": run.seed, "iterations": run.iterations,
             "named_configs": " ".join(run.named_configs), "source": run.source,
             **{metric: run.final(metric) for metric in comparison.metrics}}
            for arm in comparison.arms for run in arm.runs]


def _csv(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})  # floats unrounded (repr)
    return out.getvalue()


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike, *, plot: bool = True) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv``, ``runs.csv`` and (``plot``) ``compare.png`` into
    ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"compare.md": markdown(comparison).encode(), "compare.csv": _csv(arm_rows(comparison)).encode(),
             "runs.csv": _csv(run_rows(comparison)).encode()}
    if plot:
        from codeit.compare.plot import curves_png

        files["compare.png"] = curves_png(comparison)
    for name, data in files.items():
        atomic_write(out / name, data)
    return {name: out / name for name in files}
