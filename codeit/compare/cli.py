"""``codeit compare``: the ablation table and curves of recorded runs, from files or MongoDB.

Imports neither torch nor transformers (nor matplotlib until a plot is written), so it runs
anywhere the records are, in about a second.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from codeit.compare.arms import DEFAULT_GROUP_BY, DEFAULT_METRICS, compare_runs
from codeit.compare.records import read_file_runs
from codeit.compare.report import SPREAD_RULE, markdown, write_comparison
from codeit.compare.selection import IdRanges, Selection, drop_resumed, parse_condition
from codeit.errors import UserError

__all__ = ["add_arguments", "main", "read_runs"]

_ID_SPEC = re.compile(r"[\d,\-]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("examples:\n"
                     "  codeit compare                                   # every run under runs/\n"
                     "  codeit compare 12-26 --status COMPLETED --control smoke --out results/ablations\n"
                     "  codeit compare --with smoke --where policy.model=tiny --metrics solved_cumulative\n"
                     "  codeit compare --mongo 127.0.0.1:27017:codeit --group-by plugins.priority\n"
                     f"\n--control: {SPREAD_RULE.replace('*', '')}.")
    parser.add_argument("runs", nargs="*", metavar="RUNS",
                        help="run ids and ranges (7, 3-17, 3-17,20) to select, and/or run folders or folders "
                             "of runs to read instead of --runs-dir (default: every run)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--runs-dir", default="runs", metavar="DIR",
                        help="the file record's root folder (default: %(default)s)")
    source.add_argument("--mongo", "-m", metavar="SPEC",
                        help="read the runs from MongoDB instead: HOST:PORT:DB, HOST:PORT, DB or a mongodb:// URI")
    parser.add_argument("--status", nargs="+", metavar="STATUS", default=[],
                        help="keep runs with one of these statuses (COMPLETED, RUNNING, INTERRUPTED, FAILED); "
                             "default: all, unfinished runs marked in the notes")
    parser.add_argument("--with", dest="with_named", nargs="+", metavar="NAME", default=[],
                        help="keep runs whose named configs include all of these")
    parser.add_argument("--where", nargs="+", metavar="KEY=VALUE", default=[],
                        help="keep runs whose config matches (KEY=VALUE or KEY!=VALUE; VALUE as JSON or text)")
    parser.add_argument("--group-by", nargs="+", metavar="WORD", default=list(DEFAULT_GROUP_BY),
                        help="what makes an arm: 'named_configs' (in order), 'updates' (command-line values "
                             "other than seed, n_iterations, resume_from, ...) and/or dotted config keys "
                             "(default: %(default)s)")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC",
                        help=f"metrics to report (default: those of {', '.join(DEFAULT_METRICS)} the runs logged)")
    parser.add_argument("--control", metavar="ARM", help="the control arm's label, as the table shows it")
    parser.add_argument("--out", metavar="DIR",
                        help="also write DIR/compare.md, compare.csv, runs.csv and compare.png")
    parser.add_argument("--no-plot", action="store_true", help="with --out: no compare.png")


def read_runs(args: argparse.Namespace):
    """The runs the arguments select, and the notes on those left out."""
    ids = [a for a in args.runs if _ID_SPEC.fullmatch(a)]
    folders = [a for a in args.runs if not _ID_SPEC.fullmatch(a)]
    selection = Selection(ids=IdRanges.parse(ids) if ids else None,
                          statuses=frozenset(s.upper() for s in args.status),
                          named_configs=tuple(args.with_named),
                          where=tuple(parse_condition(w) for w in args.where))
    runs, notes = [], []
    if args.mongo:
        if folders:
            raise UserError(f"run folders ({folders[0]}) and --mongo exclude each other")
        from codeit.compare.mongo import read_mongo_runs

        runs, notes = read_mongo_runs(args.mongo, selection.keeps_id)
        where = f"MongoDB {args.mongo}"
    else:
        for folder in folders or [args.runs_dir]:
            if not Path(folder).is_dir():
                raise UserError(f"{folder}: no such folder of recorded runs")
            found, left_out = read_file_runs(folder, selection.keeps_id)
            runs += found
            notes += left_out
        where = ", ".join(folders or [args.runs_dir])
    runs = [run for run in runs if selection(run)]
    runs, dropped = drop_resumed(runs)
    if not runs:
        raise UserError(f"no runs matched in {where} (selection: {selection})")
    return runs, notes + dropped


def main(args: argparse.Namespace) -> int:
    runs, notes = read_runs(args)
    comparison = compare_runs(runs, metrics=args.metrics, group_by=args.group_by, control=args.control,
                              notes=notes)
    sys.stdout.write(markdown(comparison))
    if args.out:
        written = write_comparison(comparison, args.out, plot=not args.no_plot)
        print(f"wrote {', '.join(str(p) for p in written.values())}", file=sys.stderr)
    return 0
