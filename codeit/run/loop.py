"""The CodeIt meta-iteration loop (docs/algorithm.md), calling hooks only.

:class:`CodeItLoop` runs a whole experiment from a config mapping (the Sacred config of
``experiments/codeit.py``, or any mapping with the same sections, see
:data:`codeit.config.PAPER_CONFIG`):

initialisation
    The search tasks and the training tasks come from ``config["data"]``
    (:func:`codeit.run.data.load_run_data`).  The buffer receives the training tasks' known programs
    (source ``"initial"``), the programs the ``init.samplers`` propose for the training tasks (e.g.
    ``"random"``), and ``init.mutated`` mutated tasks: variants of the training programs from the
    ``codeit_mutate`` hooks, executed on their parent's demonstration inputs and relabelled with
    ``init.relabel`` (source ``"mutated"``).

each meta-iteration ``i`` (:meth:`CodeItLoop.iteration`, readable top to bottom)
    1. sample the buffer by priority (``train.policy_samples`` from the policy part,
       ``train.initial_samples`` from the rest);
    2. train the model one epoch on them (``Model.train``), when the run has a model;
    3. ask every sampler of ``plugins.sampler`` for programs for the search tasks;
    4. execute each distinct (task, program) on the task's demonstration and test inputs in the
       sandboxed executor of ``execution.backend`` (:mod:`codeit.execution.backend`: this machine's
       :class:`~codeit.execution.executor.BatchExecutor`, or actors across a Ray cluster);
    5. relabel every executed program with each relabeler of ``plugins.relabel`` (``codeit_relabel``;
       the entries are prioritised by ``codeit_priority`` as they enter the buffer), then add
       ``mutation_chunk`` fresh mutated tasks (ablation A1);
    6. keep programs reproducing at least one demonstration output as candidates of their task;
    7. score with the top-3 rule: this iteration's candidates, all candidates so far
       (cumulative) and the policy's candidates so far (policy only);
    8. report the metrics (``codeit_metrics``) and call ``codeit_iteration_end``, where observers
       such as the built-in ``artifacts`` plugin write their files; then checkpoint
       (:mod:`codeit.run.checkpoint`).

Ablations are plugin choices or config values, never branches here (docs/experiments.md).  On CPU,
without time-limit hits, a run resumed from a checkpoint gives the same solutions and metrics
(timings aside) as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codeit.config import PAPER_CONFIG, merge_config
from codeit.execution.backend import Executor, make_executor
from codeit.execution.limits import ExecutionResult
from codeit.execution.workers import available_cpus
from codeit.files import atomic_write
from codeit.hookspecs import Proposals
from codeit.plugins import UnknownComponentError, get_plugin_manager, selected_names
from codeit.program import normalised_text
from codeit.progress import progress_bar
from codeit.run.buffer import POLICY_SOURCE, Entry, ReplayBuffer
from codeit.run.checkpoint import begin_checkpoint, changed_keys, load_checkpoint, save_checkpoint
from codeit.run.data import RunData, load_run_data
from codeit.run.priority import HookPriority, make_buffer
from codeit.run.state import IterationResults, ProgramRecord, RunState, is_timing_metric
from codeit.scoring import TOP_K, Candidate, is_solved, mean_similarity, rank
from codeit.tasks import Task

__all__ = ["CodeItLoop"]

INITIAL_SOURCE = "initial"
MUTATED_SOURCE = "mutated"

ArtifactSink = Callable[[str, str], None]


class CodeItLoop:
    """One CodeIt run (module docstring).

    ``config``: the run config (merged over :data:`codeit.config.PAPER_CONFIG`); ``pm``: a plugin
    manager (default: :func:`codeit.plugins.get_plugin_manager` for the config); ``work_dir``: where
    checkpoints (and, without ``artifact_sink``, the artifacts) go; ``artifact_sink(path, name)``:
    records a file as an artifact of the run (Sacred's ``add_artifact``; the file may be removed
    afterwards); ``resume_from``: a checkpoint or run folder to continue from; ``data``: tasks to use
    instead of loading ``config["data"]``.
    """

    def __init__(self, config: Mapping[str, Any], pm: Any = None, *, work_dir: str | os.PathLike,
                 artifact_sink: ArtifactSink | None = None, resume_from: str | os.PathLike | None = None,
                 data: RunData | None = None, seed: int | None = None, log: Callable[[str], None] | None = None):
        self.config = merge_config(PAPER_CONFIG, config)
        self.pm = pm if pm is not None else get_plugin_manager(self.config)
        self.work_dir = Path(work_dir)
        self.artifact_sink = artifact_sink
        self.resume_from = resume_from
        self.seed = int(seed if seed is not None else self.config.get("seed", 0) or 0)
        self.log = log or (lambda text: print(text, flush=True))
        self.rng = np.random.default_rng(self.seed)
        self.data = data
        self.state = RunState()
        self.model: Any = None
        self.buffer: ReplayBuffer | None = None
        self.executor: Executor | None = None
        self.resumed_from: Path | None = None
        self.resumed_iterations = 0
        self._parents: list[Task] | None = None
        # time-limit hits among the executions that fill the buffer (initial, mutated) not yet reported
        # in a meta-iteration's execution_timeouts (the initial buffer's go to iteration 0's)
        self.store_timeouts = 0
        self._writing: _CheckpointWrite | None = None
        model = self.config["plugins"].get("model")
        self.model_name = None if model in (None, "", "none", False) else str(model)
        self.samplers = selected_names(self.config, "sampler")
        self.relabelers = selected_names(self.config, "relabel")
        self.init_samplers = [str(s) for s in self.config["init"].get("samplers") or []]
        self.init_relabelers = [str(s) for s in self.config["init"].get("relabel") or []]
        self.progress = bool(self.config.get("progress", True))

    @property
    def search_tasks(self) -> list[Task]:
        return self.data.search if self.data is not None else []

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, float]:
        """Initialise (or resume), run the remaining meta-iterations, return the final metrics."""
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.model = self._make_model()  # first: a model that cannot be built fails the run at once
        if self.data is None:
            self.data = load_run_data(self.config, log=self.log)
        self.log(f"data: {len(self.data.train)} training tasks ({len(self.data.parents)} with programs), "
                 f"{len(self.data.search)} search tasks ({self.data.source})")
        ex = self.config["execution"]
        metrics: dict[str, float] = {}
        with make_executor(ex, log=self.log) as pool:
            self.executor = pool
            if self.resume_from is not None:
                self._resume(self.resume_from)
                self._leave_out(getattr(self.state, "excluded_search", []))
            else:
                self._initialise()
            self.pm.hook.codeit_run_start(config=self.config, buffer=self.buffer, tasks=self.search_tasks,
                                          start_iteration=self.state.iteration, run=self)
            try:
                while self.state.iteration < int(self.config["n_iterations"]):
                    metrics = self.iteration(self.state.iteration)
                self.wait_for_checkpoint()
            except BaseException:
                if self._writing is not None:  # let the last checkpoint be written, then fail as the run did
                    self._writing.thread.join()
                    self._writing = None
                raise
            finally:
                self.executor = None
                metrics = metrics or (self.state.history[-1] if self.state.history else {})
                self.pm.hook.codeit_run_end(config=self.config, buffer=self.buffer, metrics=metrics, run=self)
        n = len(self.search_tasks)
        ranked = (f"{metrics['solved_cumulative']:g}/{n} search tasks solved by the top 3 of every program so far "
                  f"({metrics.get('solved_policy_only', 0):g} by the policy's), ") if "solved_cumulative" in metrics else ""
        self.log(f"done: {_count(self.state.iteration, 'meta-iteration')} in {time.perf_counter() - started:.0f} s; "
                 f"{ranked}{len(self.state.solutions)}/{n} solved at some meta-iteration "
                 f"({len(self.state.policy_solutions())} by the policy's)")
        return dict(metrics)

    def iteration(self, i: int) -> dict[str, float]:
        """Run meta-iteration ``i`` (0-based); returns its metrics."""
        t_start = time.perf_counter()
        buffer = self.buffer
        self.pm.hook.codeit_iteration_start(iteration=i, buffer=buffer, config=self.config)
        m: dict[str, float] = {}

        # 1-2: sample the buffer by priority, train the model one epoch on it
        t0 = time.perf_counter()
        train = self.config["train"]
        sizes = {"policy": int(train.get("policy_samples") or 0), "initial": int(train.get("initial_samples") or 0)}
        experiences = buffer.sample_parts(sizes, rng=self.rng)
        m["train_experiences"] = len(experiences)
        m["train_policy_experiences"] = sum(e.source == POLICY_SOURCE for e in experiences)
        if self.model is not None and experiences:
            examples = [(self.model.encode_task(e.task), e.program) for e in experiences]
            m.update(_numbers(self.model.train(examples, self.config), prefix="train_"))
        m["train_seconds"] = time.perf_counter() - t0

        # 3-4: every sampler proposes programs for the search tasks; each distinct program runs on its
        # task's demonstration and test inputs (while the samplers work, when execution.overlap is on)
        t0 = time.perf_counter()
        tasks = {t.key: t for t in self.search_tasks}
        executions = _Executions(self._run_jobs, tasks, background=self._overlap())
        proposals: dict[tuple[str, str], str] = {}  # (task key, program) -> first sampler
        sampled = 0
        for name in self.samplers:
            found = self._sample(name, self.search_tasks, i, stream=executions.stream)
            m.update(found.metrics)
            for key, programs in found.programs.items():
                sampled += len(programs)
                for program in programs:
                    proposals.setdefault((key, program), name)
        m["sample_seconds"] = time.perf_counter() - t0
        m["programs_sampled"] = sampled
        m["programs_distinct"] = len(proposals)
        t0 = time.perf_counter()
        items = [(tasks[k], p, s) for (k, p), s in proposals.items() if k in tasks]
        results = executions.results([(t.key, p) for t, p, _ in items])
        m["execute_seconds"] = time.perf_counter() - t0  # after sampling: what the overlap did not hide
        m["programs_per_second"] = len(items) / m["execute_seconds"] if m["execute_seconds"] > 0 else 0.0
        m["execution_timeouts"] = _timeouts(results)

        # 5-6: relabel into the buffer; programs reproducing a demonstration become candidates
        t0 = time.perf_counter()
        entries: list[Entry] = []
        outcome = IterationResults(i)
        best_now: dict[str, tuple[float, float]] = {}  # task -> best (accuracy, similarity) of the policy's programs
        for (task, program, source), result in zip(items, results):
            outputs = self._valid(result.outputs)
            demo, test = outputs[:len(task.train)], outputs[len(task.train):]
            entries.extend(self._relabel(self.relabelers, task, program, demo, source, i))
            candidate = Candidate.from_outputs(program, demo, test, task.train, task.test)
            if source == POLICY_SOURCE:
                acc, sim = best_now.get(task.key, (0.0, 0.0))
                best_now[task.key] = (max(acc, candidate.demo_accuracy), max(sim, mean_similarity(demo, task.train)))
            if any(o is not None and o == ex.output for o, ex in zip(demo, task.train)):
                outcome.found.setdefault(task.key, {})[program] = candidate
                self.state.add_candidate(task.key, program, candidate, source)
            outcome.programs.append(ProgramRecord(task.key, source, program, candidate.demo_accuracy,
                                                  sum(o is not None for o in demo), candidate.test_correct))
        m["programs_valid"] = sum(r.valid_outputs > 0 for r in outcome.programs)
        policy_before = buffer.count("policy")
        m["new_entries"] = buffer.add_many(entries)
        m["new_policy_entries"] = buffer.count("policy") - policy_before
        m["new_mutated_entries"] = self._add_mutated(int(self.config.get("mutation_chunk") or 0), i)
        m["execution_timeouts"] += self.store_timeouts
        self.store_timeouts = 0
        m["new_entries"] += m["new_mutated_entries"]
        m["relabel_seconds"] = time.perf_counter() - t0
        self.state.programs_total += len(items)
        m["programs_total"] = self.state.programs_total

        # 7: score with the top-3 rule
        m.update(self._score(i, outcome))
        m.update(self._policy_progress(best_now))
        m["buffer_size"] = len(buffer)
        m["buffer_policy"] = buffer.count("policy")
        m["buffer_initial"] = buffer.count("initial")
        m["iteration_seconds"] = time.perf_counter() - t_start

        # 8: report to the observers, then checkpoint
        self.state.history.append(dict(m))
        self.pm.hook.codeit_metrics(iteration=i, metrics=m, config=self.config)
        self.pm.hook.codeit_iteration_end(iteration=i, buffer=buffer, metrics=m, results=outcome, run=self,
                                          config=self.config)
        self.state.iteration = i + 1
        every = int(self.config["checkpoint"].get("every") or 0)
        if every > 0 and ((i + 1) % every == 0 or i + 1 == int(self.config["n_iterations"])):
            t0 = time.perf_counter()
            self.wait_for_checkpoint()
            write = begin_checkpoint(self.work_dir, state=self.state, buffer=self.buffer, model=self.model,
                                     rng=self.rng, seed=self.seed, config=self.config,
                                     keep=int(self.config["checkpoint"].get("keep") or 1))
            if self.config["checkpoint"].get("background", True):
                self._writing = _CheckpointWrite(i, write)
            else:
                write()
            m["checkpoint_seconds"] = time.perf_counter() - t0  # what the run waited for
            self.pm.hook.codeit_metrics(iteration=i, metrics={"checkpoint_seconds": m["checkpoint_seconds"]},
                                        config=self.config)
        self.log(self._summary(i, m))
        return m

    # -- initialisation --------------------------------------------------------------------------

    def _make_model(self) -> Any:
        if self.model_name is None:
            return None
        model = self.pm.hook.codeit_make_model(name=self.model_name, config=self.config)
        if model is None:
            raise UnknownComponentError(f"no plugin provides model {self.model_name!r} (config plugins.model; "
                                        "`codeit plugins` lists the plugins)")
        return model

    def _initialise(self) -> None:
        t0 = time.perf_counter()
        self.buffer = make_buffer(self.config, self.pm)
        counts: dict[str, float] = {}
        # the training tasks' own programs
        jobs = [(t, t.program) for t in self.data.parents]
        counts["init_initial"] = self._execute_and_store(jobs, INITIAL_SOURCE, 0, self.init_relabelers)
        # programs proposed for the training tasks (e.g. random programs in the embedded default)
        by_key = {t.key: t for t in self.data.train}
        for name in self.init_samplers:
            proposals = self._sample(name, self.data.train, 0).programs
            jobs = [(by_key[k], p) for k, programs in proposals.items() for p in dict.fromkeys(programs)]
            counts[f"init_{name}"] = self._execute_and_store(jobs, name, 0, self.init_relabelers)
        # mutated tasks
        counts["init_mutated"] = self._add_mutated(int(self.config["init"].get("mutated") or 0), 0)
        counts["init_buffer_size"] = len(self.buffer)
        # a time-limit hit here depends on the machine's load and changes what the buffer holds
        counts["init_timeouts"] = self.store_timeouts
        counts.update(self._exclude_known_programs())
        counts.update(self._warmup())
        counts["init_seconds"] = time.perf_counter() - t0
        self.state.init_metrics = counts
        self.log("initial buffer: " + ", ".join(f"{k[5:]} {v:g}" if not is_timing_metric(k) else f"{v:.1f} s"
                                                 for k, v in counts.items()))

    def _exclude_known_programs(self) -> dict[str, float]:
        """``data.exclude_known_programs``: leave out the search tasks whose known program (held-out
        training tasks have one) is held by an entry of the initial buffer or is a mutation parent,
        both normalised (:meth:`codeit.program.Program.normalise`) -- such a task is solved by recalling
        a program the model was trained on, not by search.  The keys are kept in the run state (a
        resumed run leaves out the same tasks)."""
        if not self.config["data"].get("exclude_known_programs"):
            return {}
        known = {_normalised(e.program) for e in self.buffer}
        known.update(_normalised(t.program) for t in self.mutation_parents())
        known.discard(None)
        excluded = [t.key for t in self.search_tasks if t.program and _normalised(t.program) in known]
        self.state.excluded_search = excluded
        self._leave_out(excluded)
        return {"init_search_excluded": len(excluded), "init_search_tasks": len(self.search_tasks)}

    def _leave_out(self, keys: Sequence[str]) -> None:
        if keys:
            gone = set(keys)
            self.data = dataclasses.replace(self.data, search=[t for t in self.data.search if t.key not in gone])
            self.log(f"search: {len(gone)} task(s) left out, their known program is in the initial buffer "
                     f"({', '.join(sorted(gone))}); {len(self.data.search)} search tasks")

    def _warmup(self) -> dict[str, float]:
        """``train.warmup_epochs`` epochs of the model over the whole initial part of the buffer before
        the first meta-iteration: a randomly initialised model's stand-in for pretraining (0: none, the
        paper, whose model is pretrained)."""
        epochs = int(self.config["train"].get("warmup_epochs") or 0)
        if self.model is None or epochs <= 0:
            return {}
        t0 = time.perf_counter()
        examples = [(self.model.encode_task(e.task), e.program) for e in self.buffer.entries("initial")]
        loss = float("nan")
        for _ in range(epochs):  # the model shuffles each epoch
            loss = float((self.model.train(examples, self.config) or {}).get("train_loss", loss))
        return {"init_warmup_examples": float(len(examples) * epochs), "init_warmup_loss": loss,
                "init_warmup_seconds": time.perf_counter() - t0}

    def mutation_parents(self) -> list[Task]:
        """The programs that are mutated: the training tasks' programs, and the tasks the
        ``init.samplers`` programs were relabelled into (e.g. random programs, docs/algorithm.md)."""
        if self._parents is None:
            sources = set(self.init_samplers)
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
        bar = progress_bar(n, "mutated tasks", "task", self.progress)
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
            new = self._execute_and_store(jobs, MUTATED_SOURCE, iteration, self.init_relabelers, limit=n - added)
            added += new
            bar.update(new)
        bar.close()
        return added

    def _execute_and_store(self, jobs: Sequence[tuple[Task, str]], source: str, iteration: int,
                           relabelers: Sequence[str], limit: int | None = None) -> int:
        """Execute programs on their task's demonstrations, relabel, add to the buffer; entries added."""
        if not jobs:
            return 0
        results = self._run_jobs([(p, [e.input for e in t.train]) for t, p in jobs])
        self.store_timeouts += _timeouts(results)
        entries: list[Entry] = []
        for (task, program), result in zip(jobs, results):
            entries.extend(self._relabel(relabelers, task, program, self._valid(result.outputs), source, iteration))
            if limit is not None and len(entries) >= limit:
                entries = entries[:limit]
                break
        return self.buffer.add_many(entries)

    # -- hooks -----------------------------------------------------------------------------------

    def _sample(self, name: str, tasks: Sequence[Task], iteration: int, stream: Callable | None = None) -> Proposals:
        answer = self.pm.hook.codeit_sample_programs(name=name, tasks=list(tasks), model=self.model,
                                                     iteration=iteration, rng=self.rng, config=self.config,
                                                     stream=stream)
        if answer is None:
            raise UnknownComponentError(f"no plugin provides sampler {name!r} (config plugins.sampler or "
                                        "init.samplers; `codeit plugins` lists the plugins)")
        if isinstance(answer, Proposals):
            return Proposals({k: list(v) for k, v in answer.programs.items()}, _numbers(answer.metrics))
        if isinstance(answer, Mapping):
            return Proposals({k: list(v) for k, v in answer.items()})
        raise TypeError(f"sampler {name!r} returned {type(answer).__name__}, expected Proposals or a mapping")

    def _relabel(self, names: Sequence[str], task: Task, program: str, outputs: Sequence[Any], source: str,
                 iteration: int) -> list[Entry]:
        entries: list[Entry] = []
        for name in names:
            result = self.pm.hook.codeit_relabel(name=name, task=task, program=program, outputs=outputs,
                                                 source=source, iteration=iteration, config=self.config)
            if result is None:
                raise UnknownComponentError(f"no plugin provides relabeler {name!r} (config plugins.relabel or "
                                            "init.relabel; `codeit plugins` lists the plugins)")
            entries.extend(result)
        return entries

    def _overlap(self) -> bool:
        """Whether sampled programs run while the samplers work (``execution.overlap``; ``"auto"``: when
        the machine has CPUs to spare beyond the executor's workers, so the network keeps its own)."""
        setting = self.config["execution"].get("overlap", "auto")
        if setting == "auto":
            return self.model is not None and available_cpus() > 2 * max(1, self.executor.n_workers)
        return bool(setting)

    def _run_jobs(self, jobs: list[tuple[str, list[Any]]]) -> list[ExecutionResult]:
        if not jobs:
            return []
        bar = progress_bar(len(jobs), "executing", "program", self.progress)
        try:
            return self.executor.run(jobs, progress=lambda done, total: bar.update(done - bar.n))
        finally:
            bar.close()

    def _valid(self, outputs: Sequence[Any]) -> list[Any]:
        """Outputs with ``execution.max_cells`` or more cells discarded (docs/algorithm.md, step 4)."""
        limit = int(self.config["execution"].get("max_cells") or 0)
        if not limit:
            return list(outputs)
        return [o if o is not None and len(o) * len(o[0]) < limit else None for o in outputs]

    # -- scoring ---------------------------------------------------------------------------------

    def _score(self, i: int, outcome: IterationResults) -> dict[str, float]:
        """The solve rates of iteration ``i``: this iteration's candidates, every candidate so far
        (cumulative; first solutions are announced with ``codeit_solution_found``) and the policy's
        candidates so far (policy only); the tasks those top 3 solved at some meta-iteration so far
        (``_ever``: DESIGN's "any solution so far", which a later, better-ranked wrong program cannot
        take back); plus the best demonstration accuracy the policy has reached
        per task (a measure that moves before tasks are solved)."""
        n = max(1, len(self.search_tasks))
        state = self.state
        solved_now = {k for k, pool in outcome.found.items() if is_solved(pool.values())}
        demo_now = {k for k, pool in outcome.found.items() if any(c.demo_accuracy == 1.0 for c in pool.values())}
        solved_all, solved_policy, demo_all = set(), set(), set()
        best_policy = 0.0
        for key, pool in state.candidates.items():
            ranked = rank(pool.values())
            if is_solved(ranked):
                solved_all.add(key)
                if key not in state.solutions:
                    self._announce(i, key, next(c for c in ranked[:TOP_K] if c.test_correct))
            if ranked and ranked[0].demo_accuracy == 1.0:
                demo_all.add(key)
            policy = state.candidates_from(key, POLICY_SOURCE)
            if is_solved(policy):
                solved_policy.add(key)
                state.mark_policy_solved(key, i)
            best_policy += max((c.demo_accuracy for c in policy), default=0.0)
        new_solved = sum(1 for s in state.solutions.values() if s["iteration"] == i)
        policy_ever = len(state.policy_solutions())
        return {"solved": len(solved_now), "solve_rate": len(solved_now) / n,
                "solved_cumulative": len(solved_all), "solve_rate_cumulative": len(solved_all) / n,
                "solved_policy_only": len(solved_policy), "solve_rate_policy_only": len(solved_policy) / n,
                "solved_ever": len(state.solutions), "solve_rate_ever": len(state.solutions) / n,
                "solved_policy_ever": policy_ever, "solve_rate_policy_ever": policy_ever / n,
                "demo_solved": len(demo_now), "demo_solve_rate": len(demo_now) / n,
                "demo_solve_rate_cumulative": len(demo_all) / n, "new_solved": new_solved,
                "tasks_with_candidates": len(state.candidates),
                "policy_best_demo_accuracy": best_policy / n}

    def _policy_progress(self, best_now: Mapping[str, tuple[float, float]]) -> dict[str, float]:
        """Continuous measures of the policy's progress, means over every search task (a task without an
        executable policy program counts 0): the best demonstration accuracy (share of demonstrations
        reproduced exactly) and the best output similarity (:func:`codeit.scoring.mean_similarity`:
        equal cells over the larger grid's area) of the policy's programs, in this meta-iteration
        (``_now``) and so far.  ``policy_best_demo_accuracy`` (so far) comes from :meth:`_score`."""
        n = max(1, len(self.search_tasks))
        best = self.state.update_policy_best(dict(best_now))
        return {"policy_best_demo_accuracy_now": sum(a for a, _ in best_now.values()) / n,
                "policy_best_similarity_now": sum(s for _, s in best_now.values()) / n,
                "policy_best_similarity": sum(s for _, s in best.values()) / n}

    def _announce(self, i: int, key: str, best: Candidate) -> None:
        source = self.state.sources[key][best.program]
        self.state.solutions[key] = {"program": best.program, "iteration": i, "source": source,
                                     "demo_accuracy": best.demo_accuracy}
        task = next(t for t in self.search_tasks if t.key == key)
        self.pm.hook.codeit_solution_found(task=task, program=best.program, iteration=i,
                                           demo_accuracy=best.demo_accuracy, source=source, config=self.config)

    def _summary(self, i: int, m: Mapping[str, float]) -> str:
        n = len(self.search_tasks)
        loss = f", loss {m['train_loss']:.3f}" if "train_loss" in m else ""
        return (f"iteration {i + 1}/{self.config['n_iterations']}: solved {m['solved']:g}/{n} this iteration, "
                f"{m['solved_cumulative']:g} cumulative, {m['solved_policy_only']:g} policy only "
                f"({m['solved_policy_ever']:g} at some iteration) "
                f"(best demo accuracy {m['policy_best_demo_accuracy_now']:.3f} now, {m['policy_best_demo_accuracy']:.3f} "
                f"so far); "
                f"{m['programs_distinct']:g} programs ({m['programs_valid']:g} valid), +{m['new_entries']:g} "
                f"entries, buffer {m['buffer_size']:g}{loss}; {m['iteration_seconds']:.1f} s")

    # -- files -----------------------------------------------------------------------------------

    def add_artifact(self, name: str, data: bytes) -> None:
        """Record file ``name`` with the run: handed to the artifact sink (Sacred), else written to
        ``<work dir>/outputs/``."""
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

    def add_metrics(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Add ``metrics`` measured by an observer to meta-iteration ``iteration``'s record (its
        history entry and ``codeit_metrics``), e.g. the GPU's busy fraction."""
        values = _numbers(metrics)
        if 0 <= iteration < len(self.state.history):
            self.state.history[iteration].update(values)
        self.pm.hook.codeit_metrics(iteration=iteration, metrics=values, config=self.config)

    def wait_for_checkpoint(self) -> None:
        """Wait until the checkpoint being written in the background (``checkpoint.background``) is
        complete; raise its error if writing failed; report its ``checkpoint_write_seconds`` (to
        ``codeit_metrics``, as ``checkpoint_seconds``: not in the history a checkpoint holds)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        writing.thread.join()
        if writing.error is not None:
            raise writing.error
        self.pm.hook.codeit_metrics(iteration=writing.iteration, metrics={"checkpoint_write_seconds": writing.seconds},
                                    config=self.config)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/iter-NNNN`` for the iterations done so far (:mod:`codeit.run.checkpoint`),
        after any checkpoint still being written in the background."""
        self.wait_for_checkpoint()
        return save_checkpoint(self.work_dir, state=self.state, buffer=self.buffer, model=self.model,
                               rng=self.rng, seed=self.seed, config=self.config,
                               keep=int(self.config["checkpoint"].get("keep") or 1))

    def _resume(self, path: str | os.PathLike) -> None:
        capacity = int(self.config["buffer"]["capacity"])
        found = load_checkpoint(path, priority=HookPriority(self.pm, self.config), capacity=capacity,
                                model=self.model, rng=self.rng)
        self.state, self.buffer = found.state, found.buffer
        changed = changed_keys(found.config, self.config)
        if changed:
            self.log(f"warning: resuming {found.path} with a different config: {', '.join(changed[:12])}"
                     + (" ..." if len(changed) > 12 else ""))
        self.resumed_from = found.path
        self.resumed_iterations = self.state.iteration
        self.log(f"resumed from {found.path}: {_count(self.state.iteration, 'meta-iteration')} done, "
                 f"{len(self.state.solutions)} tasks solved, buffer {len(self.buffer)}")
        for i, metrics in enumerate(self.state.history):  # the record of the resumed run is complete
            self.pm.hook.codeit_metrics(iteration=i, metrics=metrics, config=self.config)


class _CheckpointWrite:
    """A checkpoint of iteration ``iteration`` written by ``write`` in a background thread: the next
    meta-iteration (its training on the GPU) starts while the files are written, hashed and flushed."""

    def __init__(self, iteration: int, write: Callable[[], Path]) -> None:
        self.iteration = iteration
        self.write = write
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, name="codeit-checkpoint", daemon=False)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            self.write()
        except BaseException as err:  # noqa: BLE001 - raised again in the run's thread
            self.error = err
        self.seconds = time.perf_counter() - t0


class _Executions:
    """The search tasks' programs, executed once each: in the background while samplers stream
    batches (one thread owns the executor, batches in order), or all at once when asked for."""

    def __init__(self, run_jobs: Callable[[list], list[ExecutionResult]], tasks: Mapping[str, Task],
                 background: bool) -> None:
        self.run_jobs = run_jobs
        self.tasks = tasks
        self.done: dict[tuple[str, str], ExecutionResult] = {}
        self.sent: set[tuple[str, str]] = set()
        self.queue: queue.Queue | None = queue.Queue() if background else None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if self.queue is not None:
            self.thread = threading.Thread(target=self._work, name="codeit-execute", daemon=True)
            self.thread.start()

    @property
    def stream(self) -> Callable[[Mapping[str, Sequence[str]]], None] | None:
        """What samplers get as ``stream`` (``None`` without a background thread)."""
        return self._submit if self.queue is not None else None

    def _submit(self, batch: Mapping[str, Sequence[str]]) -> None:
        keys = [(k, p) for k, programs in batch.items() if k in self.tasks for p in programs]
        keys = [key for key in dict.fromkeys(keys) if key not in self.sent]
        self.sent.update(keys)
        if keys:
            self.queue.put(keys)

    def _work(self) -> None:
        while (keys := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self._execute(keys)
                except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
                    self.error = err

    def _execute(self, keys: list[tuple[str, str]]) -> None:
        jobs = [(p, [e.input for e in self.tasks[k].examples]) for k, p in keys]
        self.done.update(zip(keys, self.run_jobs(jobs)))

    def results(self, keys: list[tuple[str, str]]) -> list[ExecutionResult]:
        """The results of ``keys`` (executing what was not streamed), in order."""
        missing = [key for key in dict.fromkeys(keys) if key not in self.sent]
        self.sent.update(missing)
        if self.queue is not None:
            if missing:
                self.queue.put(missing)
            self.queue.put(None)
            self.thread.join()
            if self.error is not None:
                raise self.error
        elif missing:
            self._execute(missing)
        return [self.done[key] for key in keys]


@functools.lru_cache(maxsize=65536)
def _normalised(program: str | None) -> str | None:
    """:func:`codeit.program.normalised_text`, cached (the buffer's programs repeat)."""
    return normalised_text(program)


def _timeouts(results: Sequence[ExecutionResult]) -> int:
    """How many executions hit a time limit on at least one input."""
    return sum(any(e and e.startswith("timeout") for e in r.errors) for r in results)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _numbers(values: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """The numeric entries of ``values`` (names starting with ``prefix``) as floats."""
    return {k: float(v) for k, v in (values or {}).items() if k.startswith(prefix)
            and isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)}
