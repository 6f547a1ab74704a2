"""The CodeIt Sacred experiment: the paper's configuration, a named config per ablation, recording.

``experiments/codeit.py`` is the command line (``python experiments/codeit.py with smoke``); this
module builds the experiment so that tests and tools can run it in-process::

    from codeit.experiment import make_experiment
    ex = make_experiment(file_root="runs")
    run = ex.run(named_configs=["smoke", "a3_no_priority"], config_updates={"n_iterations": 2})

The default config carries the paper's values (:mod:`codeit.config`); named configs change only
what their ablation changes and compose left to right (``with smoke a3_no_priority``).  Every run is
recorded by :class:`codeit.recording.RecordedExperiment`: a file record under ``runs/<id>/`` always,
MongoDB with ``-m HOST:PORT:DB`` or ``$CODEIT_MONGO_URL``.  docs/experiments.md has the reference.

A mistake of the user's (:class:`codeit.errors.UserError`: a bad path, an unknown plugin name, a
misspelled config key) ends the run with one line naming it (Sacred's ``--debug`` shows the
traceback); the run's file record keeps the whole traceback.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sacred.config.config_dict import ConfigDict
from sacred.utils import ConfigAddedError, SacredError, apply_backspaces_and_linefeeds

from codeit.config import NAMED_CONFIGS, PAPER_CONFIG, dotted_keys, merge_config
from codeit.errors import UserError, debug_enabled, did_you_mean
from codeit.recording import RecordedExperiment, flush, mark_resumed
from codeit.run.checkpoint import find_checkpoint
from codeit.run.loop import CodeItLoop
from codeit.run.state import is_timing_metric

__all__ = ["CodeItExperiment", "ExperimentError", "SacredReporter", "make_experiment", "resolve_run_dir"]

#: keys of the ``plugins`` section read by codeit itself; the section is open to plugins' own settings
PLUGIN_KEYS = frozenset({*PAPER_CONFIG["plugins"], "length_scale", "age_horizon"})


class ExperimentError(SacredError, UserError):
    """A user error stopping an experiment: Sacred's command line prints it as one line."""

    def __init__(self, message: str) -> None:
        SacredError.__init__(self, message, print_traceback=False)




class _QuietPluginKeys(logging.Filter):
    """Sacred warns when a config update adds a key or changes a type; under ``plugins`` both are
    expected (``plugins.priority={"my-scheme": 1.0}`` replaces the paper's list by a weighted mix), so
    those warnings are dropped and :func:`check_plugin_keys` says what matters instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(('Added new config entry: "plugins.',
                                        'Changed type of config entry "plugins.')))


def check_plugin_keys(plugins: Mapping[str, Any], log: Callable[[str], None]) -> None:
    """Warn about ``plugins`` keys that codeit does not read (a plugin may read its own there)."""
    for key in plugins:
        if key not in PLUGIN_KEYS:
            log(f"warning: config plugins.{key} is not read by codeit itself (only a plugin can use it)"
                + did_you_mean(key, sorted(PLUGIN_KEYS), cutoff=0.7))


class CodeItExperiment(RecordedExperiment):
    """The recorded experiment, with user errors and unknown config keys as one clear line."""

    def run(self, *args: Any, **kwargs: Any):
        try:
            return super().run(*args, **kwargs)
        except ConfigAddedError as err:
            known = dotted_keys(self._defaults())
            names = ", ".join(f"{key!r}{did_you_mean(key, known, cutoff=0.7)}" for key in err.__conflicting_configs__)
            raise ExperimentError(f"unknown config key {names}; `print_config` lists every key") from err
        except ExperimentError:
            raise
        except UserError as err:
            if debug_enabled():
                raise
            raise ExperimentError(str(err)) from err

    def _defaults(self) -> dict[str, Any]:
        config = copy.deepcopy(PAPER_CONFIG)
        config.update(mutation_chunk=0, seed=0)
        return config


class _FreshConfigDict(ConfigDict):
    """Sacred's ConfigDict, evaluated on a copy: Sacred's own fills its nested dicts into the run's
    config by reference, so a run composing named configs (``with smoke codet5p_770m a4_no_pretraining``)
    changed the named config ``a4_no_pretraining`` for every later run of the same experiment object."""

    def __init__(self, d: Mapping[str, Any], doc: str | None = None) -> None:
        super().__init__(d)
        self.__doc__ = doc

    def __call__(self, fixed=None, preset=None, fallback=None):
        original = self._conf
        self._conf = copy.deepcopy(original)
        try:
            return super().__call__(fixed, preset, fallback)
        finally:
            self._conf = original


def make_experiment(name: str = "codeit", *, file_root: str | os.PathLike | None = "runs", use_env: bool = True,
                    mongo_options: Mapping[str, Any] | None = None, save_git_info: bool = True,
                    plugins: tuple = (), named_configs: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> CodeItExperiment:
    """A fresh CodeIt experiment recording under ``file_root`` (see :class:`RecordedExperiment`).

    ``plugins`` are extra plugin objects registered for every run (after the config's modules);
    ``named_configs`` adds named configs (name -> config updates) to :data:`NAMED_CONFIGS`.
    """
    extra_plugins = tuple(plugins)
    ex = CodeItExperiment(name, file_root=file_root, use_env=use_env, mongo_options=dict(mongo_options or {}),
                          save_git_info=save_git_info)
    if not any(isinstance(f, _QuietPluginKeys) for f in logging.getLogger().filters):
        logging.getLogger().addFilter(_QuietPluginKeys())  # Sacred's config checks log to the root logger
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    config = {k: v for k, v in PAPER_CONFIG.items() if k != "mutation_chunk_ratio"}
    ex.configurations.append(_FreshConfigDict(config))

    @ex.config
    def derived(init):
        mutation_chunk_ratio = 0.0  # A1: fresh mutated tasks per meta-iteration, as a share of init.mutated
        mutation_chunk = round(mutation_chunk_ratio * init["mutated"])  # unless set explicitly
        assert mutation_chunk >= 0, "mutation_chunk must be >= 0"

    for cfg_name, (updates, doc) in NAMED_CONFIGS.items():
        ex.named_configs[cfg_name] = _FreshConfigDict(updates, doc)
    for cfg_name, updates in (named_configs or {}).items():
        ex.named_configs[cfg_name] = _FreshConfigDict(updates)

    @ex.main
    def main(_run, _config, _seed, plugins):
        """Run the pipeline the config names (``codeit`` or ``mutation_baseline``)."""
        config = merge_config(_config, {})
        check_plugin_keys(config["plugins"], lambda text: print(text, flush=True))
        if config["pipeline"] not in PIPELINES:
            raise UserError(f"pipeline must be one of {', '.join(PIPELINES)}, not {config['pipeline']!r}")
        return PIPELINES[config["pipeline"]](_run, config, _seed, list(extra_plugins))

    return ex


# --------------------------------------------------------------------------------------------------
# pipelines


class SacredReporter:
    """The plugin that records a run in Sacred: every metric via ``log_scalar`` (step = iteration),
    the initial buffer's make-up and the solutions in the run's ``info``."""

    def __init__(self, run) -> None:
        self.run = run
        self.live = False  # metrics replayed from a checkpoint come before codeit_run_start

    def codeit_run_start(self, buffer, start_iteration: int) -> None:
        self.live = True
        if start_iteration == 0:
            sources: dict[str, int] = {}
            for entry in buffer:
                sources[entry.source] = sources.get(entry.source, 0) + 1
            self.run.info["initial_buffer"] = {"size": len(buffer), "sources": sources}

    def codeit_metrics(self, iteration: int, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.run.log_scalar(name, float(value), int(iteration))
        if self.live:
            flush(self.run)  # on file before the checkpoint: a killed run's record is complete up to it

    def codeit_solution_found(self, task, iteration: int, source: str) -> None:
        print(f"  solved {task.key} at iteration {iteration + 1} ({source})", flush=True)


def file_record_dir(run) -> Path | None:
    """The run's file-record folder (``runs/<id>``), if a file observer records it."""
    from sacred.observers import FileStorageObserver

    for observer in run.observers:
        if isinstance(observer, FileStorageObserver) and getattr(observer, "dir", None):
            return Path(observer.dir)
    return None


def resolve_run_dir(spec: str | int | os.PathLike, run=None, file_root: str | os.PathLike | None = "runs") -> Path:
    """``resume_from`` as a folder: an existing path, or a run id (``resume_from=3``: Sacred reads it
    as a number) under the file record's root."""
    spec = str(spec)
    path = Path(spec)
    if path.exists():
        return path
    roots: list[Path] = []
    if run is not None:
        from sacred.observers import FileStorageObserver

        roots += [Path(o.basedir) for o in run.observers if isinstance(o, FileStorageObserver)]
    if file_root is not None:
        roots.append(Path(file_root))
    roots = list(dict.fromkeys(r.resolve() for r in roots))
    for root in roots:
        if (root / spec).is_dir():
            return root / spec
    raise UserError(f"resume_from={spec}: neither a folder nor a run id under "
                    f"{', '.join(map(str, roots)) or 'the file record root'}")


CONTENT_TYPES = {".json": "application/json", ".csv": "text/csv", ".png": "image/png", ".gz": "application/gzip",
                 ".txt": "text/plain"}


def artifact_sink(run) -> Callable[[str, str], None]:
    """``run.add_artifact`` with the content type given (Sacred would guess it, and say so)."""

    def add(path: str, name: str) -> None:
        run.add_artifact(path, name, content_type=CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream"))

    return add


def _work_dir(run, config: Mapping[str, Any]) -> Path:
    if config.get("work_dir"):
        return Path(config["work_dir"])
    record = file_record_dir(run)
    if record is not None:
        return record
    return Path("runs") / "unobserved" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _set_threads(config: Mapping[str, Any]) -> None:
    threads = config.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


@contextlib.contextmanager
def _library_progress_bars(enabled: bool):
    """transformers' own progress bars (e.g. "Writing model shards" at every checkpoint) follow
    ``policy.progress`` for the duration of a run."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def run_codeit(run, config: dict[str, Any], seed: int, plugins: list) -> dict[str, Any]:
    """The CodeIt loop, recorded in ``run``."""
    from codeit.plugins import get_plugin_manager

    _set_threads(config)
    if config["policy"].get("seed") is None:
        config["policy"]["seed"] = int(seed)
    work_dir = _work_dir(run, config)
    resume = None
    if config.get("resume_from") not in (None, ""):
        resume = resolve_run_dir(config["resume_from"], run)
        mark_resumed(resume, run)  # the killed run's record: INTERRUPTED, its output recovered
    pm = get_plugin_manager(config, plugins=[*plugins, ("sacred_reporter", SacredReporter(run))])
    loop = CodeItLoop(config, pm, work_dir=work_dir, artifact_sink=artifact_sink(run), resume_from=resume,
                      seed=seed)
    run.info["work_dir"] = str(work_dir)
    if resume is not None:
        checkpoint = find_checkpoint(resume)
        run.info["resumed_from"] = {"checkpoint": str(checkpoint), "run_dir": str(resume),
                                    "run_id": resume.name if (resume / "run.json").exists() else None}
    with _library_progress_bars(bool(config["policy"].get("progress", True))):
        metrics = loop.run()
    if resume is not None:
        run.info["resumed_from"]["iterations_done"] = loop.resumed_iterations
    summary = {k: v for k, v in metrics.items() if k.startswith(("solve", "solved", "demo_solve")) or k == "buffer_size"}
    summary["iterations"] = loop.state.iteration
    return {k: (float(v) if not isinstance(v, int) else v) for k, v in summary.items()
            if not is_timing_metric(k)}


def run_mutation_baseline(run, config: dict[str, Any], seed: int, plugins: list) -> dict[str, Any]:
    """The mutation baseline of :mod:`codeit.baseline.pipeline` (the code behind ``codeit
    mutation-baseline``), configured from the run config (its mutators: the ``plugins`` config, as in
    the loop) and recorded in ``run``.

    Its output folder is ``<work dir>/mutation_baseline`` (with ``resume_from``: the earlier run's,
    continued in place).  The solve-rate curve is logged with the number of mutated programs as the
    step; ``performance.csv``, ``performance.png``, ``solutions.json`` and ``summary.json`` become
    artifacts.
    """
    from codeit.baseline.pipeline import BaselineSettings, run_baseline
    from codeit.execution.limits import ExecutionLimits
    from codeit.tasks import default_data_dir

    if config.get("resume_from") not in (None, ""):
        out = resolve_run_dir(config["resume_from"], run) / "mutation_baseline"
        mark_resumed(out.parent, run)
        run.info["resumed_from"] = {"run_dir": str(out.parent), "run_id": out.parent.name}
    else:
        out = _work_dir(run, config) / "mutation_baseline"
    data, baseline, execution = config["data"], config["baseline"], config["execution"]
    folder = None
    if data["source"] == "codeit":
        folder = data.get("path") or default_data_dir()
        if folder is None:
            raise FileNotFoundError("data.source=codeit needs the CodeIt data folder ($CODEIT_DATA, "
                                    "../shared/codeit-data or data.path)")
    limits = ExecutionLimits.from_config({**execution, "memory_mb": baseline["memory_mb"]})
    settings = BaselineSettings(
        out=str(out), samples=int(baseline["samples"]), data=str(folder) if folder else None,
        workers=execution.get("workers"), seed=int(seed),
        chunk_size=int(baseline["chunk_size"]), curve_step=int(baseline["curve_step"]),
        max_tasks=data.get("n_search_tasks"), max_seeds=data.get("n_train_tasks"),
        memory_mb=int(baseline["memory_mb"]), stall_timeout=float(baseline["stall_timeout"]),
        max_attempts=int(config["mutation"]["max_attempts"]), memoise=bool(baseline["memoise"]),
        candidates=str(baseline["candidates"]), prune=bool(baseline["prune"]),
        progress=bool(baseline["progress"]), limits=limits,
        plugins={"modules": list(config["plugins"].get("modules") or ()),
                 "disable": list(config["plugins"].get("disable") or ())},
        backend=str(execution.get("backend", "local")),
        ray={k: v for k, v in execution.items() if k.startswith("ray_")})
    run.info["work_dir"] = str(out)
    summary = run_baseline(settings, log=lambda text: print(text, flush=True))
    n_tasks = summary.get("evaluation_tasks", 0)
    for samples, rate in summary.get("curve", []):
        run.log_scalar("solve_rate", float(rate), int(samples))
        run.log_scalar("solved", round(rate * n_tasks), int(samples))
    run.info["timings"] = {k: v for k, v in summary.items() if is_timing_metric(k) or k == "worker_restarts"}
    sink = artifact_sink(run)
    for name in ("performance.csv", "performance.png", "solutions.json", "summary.json"):
        if (out / name).exists():
            sink(str(out / name), name)
    return {k: summary[k] for k in ("samples", "solve_rate", "solved", "evaluation_tasks",
                                    "tasks_with_candidates") if k in summary}


PIPELINES: dict[str, Callable[..., Any]] = {"codeit": run_codeit, "mutation_baseline": run_mutation_baseline}
