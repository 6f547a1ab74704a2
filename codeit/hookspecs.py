"""The hook specifications of codeit: every extension point, with its contract.

Plugins implement hooks by defining functions (in a module, or methods on an object) with the
names and argument names below; an implementation may accept any subset of a hook's arguments.
Every callable attribute whose name starts with ``codeit_`` is taken as a hook implementation (as
pytest does with ``pytest_``), so a misspelled name fails at start-up
(:meth:`codeit.plugins.PluginManager.check_pending`).  Decorate with :data:`hookimpl` to pass
options (``tryfirst``, ``trylast``, ``wrapper``).

**Selecting components by name.**  Hooks for components that a run chooses between -- the model,
samplers, relabelers and priority schemes -- take the component's ``name`` as their first argument
and are ``firstresult``: an implementation returns ``None`` unless ``name`` is one it provides, and
the first non-``None`` answer wins.  The caller passes the names the run config selects
(``config["plugins"]``, see :mod:`codeit.plugins`); a name no plugin answers is an error.  Plugins
registered later are asked first, so a third-party plugin may override a built-in name.  Hooks that
every plugin takes part in (mutators, lifecycle, metrics) are collected: the caller gets a list of
the non-``None`` results.

``config`` is always the run's configuration, a read-only nested mapping (Sacred's config).
Keep this module and docs/hooks.md in step: a test checks that every hook here is documented there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from codeit.run.buffer import Entry, ReplayBuffer
    from codeit.run.state import IterationResults, RunState
    from codeit.tasks import Grid, Task

PROJECT = "codeit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass
class Samples:
    """What :meth:`Model.sample` returns: ``texts[i]`` holds the program texts drawn for input ``i``;
    ``metrics`` are figures of this call (name -> number, e.g. ``sample_seconds``) for the run's record."""

    texts: list[list[str]]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Proposals:
    """What :func:`codeit_sample_programs` returns: ``programs`` maps a task key to the program texts
    proposed for it; ``metrics`` are figures of this call (name -> number, e.g. ``sample_parse_rate``),
    logged with the iteration's metrics.  A sampler may return a plain ``{task key: [program, ...]}``
    mapping instead when it has no figures to report."""

    programs: dict[str, list[str]]
    metrics: dict[str, float] = field(default_factory=dict)


class Run(Protocol):
    """What the lifecycle hooks receive as ``run`` (the loop, :class:`codeit.run.loop.CodeItLoop`)."""

    state: RunState  # metrics history, every candidate and first solution so far
    search_tasks: Sequence[Task]
    work_dir: Any  # a pathlib.Path: checkpoints and, without a recorder, outputs/

    def add_artifact(self, name: str, data: bytes) -> None:
        """Record ``data`` as the run's file ``name`` (Sacred's artifacts, or ``<work dir>/outputs/``)."""

    def add_metrics(self, iteration: int, metrics: Mapping[str, float]) -> None:
        """Add metrics an observer measured to meta-iteration ``iteration`` (history and ``codeit_metrics``)."""


class Model(Protocol):
    """What :func:`codeit_make_model` returns: the policy, a text-to-program model.

    The loop talks to the model through these five methods only.  Everything a model reports comes
    back as a return value (no attributes the loop reads afterwards)."""

    def encode_task(self, task: Task) -> str:
        """The model's input text for ``task``, used for training and sampling alike.  It must honour
        ``config["policy"]["n_examples"]`` (ablation A5: one demonstration);
        :func:`codeit.encoding.task_text` does, with the paper's sparse encoding."""

    def train(self, examples: Sequence[tuple[str, str]], config: Mapping[str, Any]) -> Mapping[str, float]:
        """One epoch on ``(input text, program text)`` pairs; returns metrics of the epoch, named
        ``train_*`` (e.g. ``train_loss``)."""

    def sample(self, inputs: Sequence[str], n: int, config: Mapping[str, Any], rng: Any) -> Samples:
        """``n`` program texts for each input text (in order), and metrics of the call."""

    def save(self, path: str) -> None:
        """Write the weights and whatever :meth:`load` needs to the folder ``path``."""

    def load(self, path: str) -> None:
        """Restore the state written by :meth:`save`."""


# --------------------------------------------------------------------------------------------------
# components chosen by name


@hookspec(firstresult=True)
def codeit_make_model(name: str, config: Mapping[str, Any]) -> Model | None:
    """Build the policy model called ``name`` (``config["plugins"]["model"]``).

    Called once at run start (and by tools that need a model).  Return an object with
    ``train``/``sample``/``save``/``load`` (:class:`Model`), or ``None`` if ``name`` is not yours.
    The model's own settings (checkpoint, size, device) come from ``config``.  ``firstresult``.
    """


@hookspec(firstresult=True)
def codeit_sample_programs(name: str, tasks: Sequence[Task], model: Model | None, iteration: int,
                           rng: Any, config: Mapping[str, Any], stream: Callable[[Mapping[str, Sequence[str]]], None]
                           | None) -> Proposals | Mapping[str, Sequence[str]] | None:
    """Propose programs for ``tasks`` with the sampler called ``name``.

    Called by the loop once per meta-iteration for each sampler in ``config["plugins"]["sampler"]``
    (e.g. ``"policy"``: the model; ``"random"``: random typed programs; ``"mutation"``: mutations of
    known programs via :func:`codeit_mutate`).  ``model`` is the run's model (``None`` in runs
    without one), ``rng`` a ``numpy.random.Generator``.  Return :class:`Proposals` (program texts per
    task key -- program lines only, no ``def``/``return``; duplicates allowed, the loop deduplicates --
    and the call's metrics) or a plain ``{task key: [program text, ...]}``, or ``None`` if ``name`` is
    not yours.  The loop executes the programs and relabels them with source ``name``.

    ``stream`` is ``None``, or (when the loop can execute programs while the sampler works, e.g. a GPU
    sampling while the CPUs execute: ``execution.overlap``) a function a sampler that works in
    batches may call with each batch, ``{task key: [program text, ...]}``, as soon as it is ready;
    the returned value must still hold every program.  ``firstresult``.
    """


@hookspec(firstresult=True)
def codeit_relabel(name: str, task: Task, program: str, outputs: Sequence[Grid | None], source: str,
                   iteration: int, config: Mapping[str, Any]) -> list[Entry] | None:
    """Turn one executed program into zero or more replay-buffer entries (relabeler ``name``).

    Called for every distinct program a sampler proposed for ``task``, after execution, once per
    relabeler in ``config["plugins"]["relabel"]`` (built in: ``"hindsight"``, ``"filter"``).
    ``outputs[i]`` is the program's output on ``task.train[i].input``, or ``None`` where it failed or
    was not a valid grid.  ``source`` is the sampler's name (``"initial"``, ``"mutated"``,
    ``"policy"``, ...), ``iteration`` the meta-iteration (0 for the initial buffer).  Return a list of
    :class:`codeit.run.buffer.Entry` (empty: nothing to store), or ``None`` if ``name`` is not yours.
    ``firstresult``.
    """


@hookspec(firstresult=True)
def codeit_priority(name: str, columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray | None:
    """Score buffer entries with the priority scheme called ``name``.

    Called by the replay buffer when entries are added (a batch at a time) and when it is
    re-prioritised, once per scheme in ``config["plugins"]["priority"]``.  ``columns`` holds
    equal-length numpy arrays describing the entries: ``accuracy`` (float, demonstration accuracy on
    the parent task), ``length`` (int, program tokens), ``iteration`` (int, when added),
    ``similarity`` (float in [0, 1], closeness of the outputs to the parent's target grids) and
    ``policy`` (bool, entry is in the policy part).  Return a float array of the same length with
    scores in [0, 1] (vectorised: no Python loop over entries), or ``None`` if ``name`` is not yours.
    The buffer combines the schemes as a weighted mean plus a small epsilon.  ``firstresult``.
    """


# --------------------------------------------------------------------------------------------------
# collected from every plugin


@hookspec
def codeit_mutate(program: str, task: Task, rng: Any, config: Mapping[str, Any]) -> list[str] | None:
    """Propose variants of ``program`` (program lines) that was written for ``task``.

    Called by the mutation sampler, the buffer initialisation and the mutation baseline for each
    program to mutate; every registered mutator takes part.  ``rng`` is a ``numpy.random.Generator``
    (draw from it only, for reproducibility).  Return a list of program texts (e.g. depth-1 mutations: one
    primitive call or argument replaced by a type-compatible one); they need not be valid or
    distinct, the caller checks, executes and deduplicates.  Collected.
    """


@hookspec
def codeit_run_start(config: Mapping[str, Any], buffer: ReplayBuffer, tasks: Sequence[Task],
                     start_iteration: int, run: Run) -> None:
    """The run begins: called once after the buffer is initialised (or loaded) and before the first
    meta-iteration.  ``tasks`` are the search tasks; ``start_iteration`` is 0, or the iteration a
    resumed run continues from; ``run`` is the run (see :func:`codeit_iteration_end`).  Return value
    ignored.  Collected."""


@hookspec
def codeit_iteration_start(iteration: int, buffer: ReplayBuffer, config: Mapping[str, Any]) -> None:
    """Meta-iteration ``iteration`` (0-based) begins, before the buffer is sampled.  Return value
    ignored.  Collected."""


@hookspec
def codeit_iteration_end(iteration: int, buffer: ReplayBuffer, metrics: Mapping[str, float],
                         results: IterationResults, run: Run, config: Mapping[str, Any]) -> None:
    """Meta-iteration ``iteration`` is complete (its checkpoint is written right after): new entries
    are in the buffer and ``metrics`` (the same mapping passed to :func:`codeit_metrics`) are final.
    ``results`` (:class:`codeit.run.state.IterationResults`) holds what the iteration's programs did;
    ``run`` is the run (:class:`Run`): ``run.state`` (metrics history, every candidate and first
    solution so far), ``run.search_tasks``, ``run.work_dir``, ``run.add_artifact(name, data)`` to
    record a file with the run (Sacred's artifacts, or ``<work dir>/outputs/``) and
    ``run.add_metrics(iteration, metrics)`` to add what an observer measured.  Observers write
    reports here (the built-in ``artifacts`` plugin writes the solutions and programs of the
    iteration).  Return value ignored.  Collected."""


@hookspec
def codeit_metrics(iteration: int, metrics: Mapping[str, float], config: Mapping[str, Any]) -> None:
    """Report ``metrics`` (name -> number, e.g. ``solved``, ``solved_cumulative``,
    ``solved_policy_only``, ``buffer_size``, ``train_loss``) for ``iteration``.  Called by the loop
    whenever a group of metrics is ready, possibly several times per iteration; observers log them.
    Return value ignored.  Collected."""


@hookspec
def codeit_solution_found(task: Task, program: str, iteration: int, demo_accuracy: float, source: str,
                          config: Mapping[str, Any]) -> None:
    """Search task ``task`` is solved for the first time in the run (top-3 rule, cumulative):
    ``program`` is the top-ranked candidate that solves every test example, found at ``iteration``
    by sampler ``source``.  Called at most once per task.  Return value ignored.  Collected."""


@hookspec
def codeit_run_end(config: Mapping[str, Any], buffer: ReplayBuffer, metrics: Mapping[str, float],
                   run: Run) -> None:
    """The run ends (after the last iteration, or when it is stopped): ``metrics`` are the final
    ones; ``run`` as in :func:`codeit_iteration_end` (the built-in ``artifacts`` plugin writes the
    solve-rate table and plot here).  Flush and close observers here.  Return value ignored.
    Collected."""
