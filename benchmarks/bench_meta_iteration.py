"""A CodeIt meta-iteration at the paper's volumes on the CPU, phase by phase, with no network.

The real loop (:class:`codeit.run.loop.CodeItLoop`) runs ``with codeit_data`` (the published training
programs, the 400 evaluation tasks as search tasks), 19,200 mutated tasks in the initial buffer, the
``random`` sampler proposing 24 programs for each search task, the default buffer and priorities, a
checkpoint after every meta-iteration and the ``artifacts`` observer.  The network is the only part
left out: the model is this benchmark's ``encode-only`` plugin, which does everything a training epoch
does before the first forward pass, with the project's own code: the loop encodes each of the 100,000
sampled experiences (``Model.encode_task``: :meth:`codeit.policy.Policy.encode_task`, its cache
included), and ``Model.train`` tokenises the pairs (:func:`codeit.policy.training.tokenize_pairs`
through :meth:`~codeit.policy.Policy.token_ids` and its cache), buckets them into batches and
collates every micro-batch into tensors, as :func:`~codeit.policy.training.train_epoch` does.  The
tokenizer is the DSL tokenizer of the ``tiny`` size (nothing to download); ``save`` writes a marker
file, so checkpoints hold everything but the network's weights.

Stages, each in a fresh process (so that peak RSS is per stage), one after the other:

``base``
    the initial buffer (mutation + execution of ``--mutated`` tasks) and ``--iterations``
    meta-iterations on it (about 20k entries at paper volume);
``<N>`` for each ``--sizes`` entry
    resumes the base run's checkpoint in a new folder, grows the buffer to ``N`` entries (below),
    and runs ``--iterations`` meta-iterations: the first writes a full checkpoint (a new run folder),
    the next ones incremental checkpoints.

**How the buffer is grown** (at run start, ``codeit_run_start``, not timed): from the entries really
executed so far (training programs, mutated and random programs with their real outputs), entry
``k`` is synthesised from real entry ``k mod n``, whose relabelled task serves as the parent: its
program gets one dead first line ``x99 = astuple(A, B)`` (``A, B`` DSL integer constants, distinct per
``k``; a new program text, so nothing is served by a cache that a real buffer would miss); its outputs
are the real ones, except that in 70 % of the entries all of them, in 25 % some of them, in 5 % none
get one cell changed (a fresh grid object; unchanged outputs stay shared with the real entry), so the
demonstration accuracy (the default priority) is 0 for 70 %, partial for 25 %, 1 for 5 % of the
entries (the proportions of ``bench_buffer.py``); the pair goes through the ``hindsight`` relabeler
(``codeit_relabel``) as a ``policy`` entry of a random earlier iteration, then into the buffer with
``add_many`` (priorities from the ``codeit_priority`` hooks).  As after ~100
meta-iterations, nearly all of the buffer is then the policy part.

Phases (seconds per meta-iteration, from the loop's own metrics plus two hook wrappers):
``buffer sample`` (``sample_parts``: 90,000 + 10,000), ``encode`` (task -> input text),
``tokenise``, ``batch`` (bucket + collate), ``programs`` (the random sampler: stands in for the
network's sampling, not counted in the CPU budget), ``execute`` (the sampled programs), ``relabel``
(relabel + add to the buffer), ``score`` (the rest of the iteration: top-3 scoring, metrics),
``artifacts`` (every ``codeit_iteration_end`` observer), ``checkpoint`` (full, then incremental).

Usage::

    python benchmarks/bench_meta_iteration.py                       # paper volumes: 20k, 200k, 1M
    python benchmarks/bench_meta_iteration.py --mutated 2000 --search-tasks 100 --sizes 20000,50000

Load averages are printed with every stage: on a shared machine the figures are only honest with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codeit.config import NAMED_CONFIGS, merge_config
from codeit.hookspecs import hookimpl
from codeit.plugins import get_plugin_manager
from codeit.run.buffer import POLICY_SOURCE, Entry
from codeit.run.checkpoint import find_checkpoint
from codeit.run.loop import CodeItLoop
from codeit.tasks import Task

#: targets of issue 14 (2 cores)
TARGET_INIT_S = 180.0
TARGET_CPU_S = 60.0
TARGET_INCREMENTAL_CHECKPOINT_S = 5.0
TARGET_RSS_GB = 8.0

#: the phases counted in "everything but the network"
CPU_PHASES = ("buffer_sample", "encode", "tokenise", "batch", "execute", "relabel", "score", "artifacts",
              "checkpoint")
PHASES = ("buffer_sample", "encode", "tokenise", "batch", "programs", "execute", "relabel", "score", "artifacts",
          "checkpoint", "checkpoint_write")
INTEGERS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN",
            "NEG_ONE", "NEG_TWO")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def peak_rss_gb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest child (the executor's workers), GB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return own, child


# -- the model without a network --------------------------------------------------------------------


class EncodeOnly:
    """A :class:`codeit.hookspecs.Model` doing a training epoch's CPU work up to the first forward pass."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        from codeit.policy import Policy, PolicyConfig

        settings = merge_config(dict(config["policy"]), {"model": "tiny", "device": "cpu", "precision": "fp32",
                                                           "progress": False})
        self.policy = Policy(PolicyConfig.from_dict(settings), threads=1)
        self.encode_seconds = 0.0

    def encode_task(self, task: Task) -> str:
        t0 = time.perf_counter()
        text = self.policy.encode_task(task)
        self.encode_seconds += time.perf_counter() - t0
        return text

    def train(self, examples: Sequence[tuple[str, str]], config: Mapping[str, Any]) -> dict[str, float]:
        from codeit.policy.training import bucket_batches, collate, micro_batches, step_groups, tokenize_pairs

        cfg = self.policy.config.train_config()
        t0 = time.perf_counter()
        inputs, targets, dropped = tokenize_pairs(self.policy.tokenizer, examples, cfg.max_input_tokens,
                                                  cfg.max_target_tokens, self.policy.token_ids)
        t1 = time.perf_counter()
        in_len = np.fromiter((len(x) for x in inputs), dtype=np.int64, count=len(inputs))
        tgt_len = np.fromiter((len(y) for y in targets), dtype=np.int64, count=len(targets))
        batches = bucket_batches(in_len, tgt_len, cfg.batch_size, self.policy.rng, cfg.bucket_batches)
        pad = self.policy.tokenizer.pad_token_id
        tokens = 0
        for group in step_groups(batches, cfg.batch_size * max(1, cfg.grad_accum)):
            for idx in micro_batches(group, in_len, tgt_len, cfg.max_batch_tokens):
                batch = collate([inputs[i] for i in idx], [targets[i] for i in idx], pad, pad)
                tokens += batch["input_ids"].numel() + batch["labels"].numel()
        t2 = time.perf_counter()
        encode, self.encode_seconds = self.encode_seconds, 0.0
        return {"train_encode_seconds": encode, "train_tokenise_seconds": t1 - t0, "train_batch_seconds": t2 - t1,
                "train_padded_tokens": tokens, "train_dropped_long": dropped}

    def sample(self, inputs, n, config, rng):  # pragma: no cover - the random sampler is used
        raise RuntimeError("encode-only model: no network to sample with")

    def save(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "encode-only.txt").write_text("no network weights: bench_meta_iteration\n")

    def load(self, path: str) -> None:
        pass


class Bench:
    """The benchmark's plugin: the model, timing wrappers, and the buffer's growth at run start."""

    def __init__(self, grow_to: int = 0, seed: int = 0) -> None:
        self.grow_to = grow_to
        self.seed = seed
        self.artifact_seconds: dict[int, float] = {}
        self.checkpoint_seconds: dict[int, float] = {}
        self.checkpoint_write_seconds: dict[int, float] = {}
        self.mutate_seconds = 0.0
        self.grow: dict[str, float] = {}

    @hookimpl
    def codeit_make_model(self, name: str, config: Mapping[str, Any]):
        return EncodeOnly(config) if name == "encode-only" else None

    @hookimpl(hookwrapper=True)
    def codeit_iteration_end(self, iteration: int):
        t0 = time.perf_counter()
        yield
        self.artifact_seconds[iteration] = time.perf_counter() - t0

    @hookimpl
    def codeit_metrics(self, iteration: int, metrics: Mapping[str, float]) -> None:
        if "checkpoint_seconds" in metrics:  # reported after the iteration's other metrics
            self.checkpoint_seconds[iteration] = float(metrics["checkpoint_seconds"])
        if "checkpoint_write_seconds" in metrics:  # the background write, reported when it is joined
            self.checkpoint_write_seconds[iteration] = float(metrics["checkpoint_write_seconds"])

    @hookimpl(hookwrapper=True)
    def codeit_mutate(self):
        t0 = time.perf_counter()
        yield
        self.mutate_seconds += time.perf_counter() - t0

    @hookimpl
    def codeit_run_start(self, buffer, start_iteration: int, run) -> None:
        if len(buffer) >= self.grow_to:
            return
        t0 = time.perf_counter()
        grow_buffer(buffer, self.grow_to, run, start_iteration, np.random.default_rng(self.seed))
        self.grow = {"grow_seconds": time.perf_counter() - t0, "grown_to": len(buffer)}


def perturbed(grid: tuple, k: int) -> tuple:
    """A fresh copy of ``grid`` with one cell changed (which one and to what depends on ``k``)."""
    h, w = len(grid), len(grid[0])
    r, c = k % h, (k // h) % w
    rows = [list(row) for row in grid]
    rows[r][c] = (rows[r][c] + 1 + k % 9) % 10
    return tuple(tuple(row) for row in rows)


def grow_buffer(buffer, size: int, run, iteration: int, rng: np.random.Generator, batch: int = 10_000) -> None:
    """Add synthesised ``policy`` entries until ``buffer`` holds ``size`` (module docstring)."""
    bases = [e for e in buffer if e.task.train]
    n_int = len(INTEGERS)
    k = 0
    while len(buffer) < size:
        entries: list[Entry] = []
        for _ in range(min(batch, size - len(buffer))):
            base = bases[k % len(bases)]
            variant = k // len(bases)
            if variant >= n_int * n_int:
                raise ValueError(f"too few real entries ({len(bases)}) to grow the buffer to {size:,}")
            program = f"x99 = astuple({INTEGERS[variant % n_int]}, {INTEGERS[variant // n_int]})\n{base.program}"
            examples = base.task.train
            n = len(examples)
            u = rng.random()  # how many outputs stay right: none (70 %), some (25 %), all (5 %)
            right = 0 if u < 0.7 else n if u >= 0.95 or n == 1 else 1 + int(rng.integers(0, n - 1))
            outputs = [e.output if i < right else perturbed(e.output, k + i) for i, e in enumerate(examples)]
            entries.extend(run.pm.hook.codeit_relabel(name="hindsight", task=base.task, program=program,
                                                      outputs=outputs, source=POLICY_SOURCE,
                                                      iteration=int(rng.integers(0, max(1, iteration))),
                                                      config=run.config))
            k += 1
        buffer.add_many(entries)


# -- one stage --------------------------------------------------------------------------------------


def run_config(args: argparse.Namespace, n_iterations: int) -> dict[str, Any]:
    config = merge_config(NAMED_CONFIGS["codeit_data"][0], {
        "seed": args.seed,
        "n_iterations": n_iterations,
        "progress": False,
        "data": {"n_search_tasks": args.search_tasks},
        "init": {"mutated": args.mutated},
        "random_programs": {"per_task": args.per_task},
        "train": {"policy_samples": args.samples * 9 // 10, "initial_samples": args.samples - args.samples * 9 // 10},
        "plugins": {"model": "encode-only", "sampler": ["random"]},
        "policy": {"progress": False},
        "checkpoint": {"every": 1, "keep": 1},
    })
    if args.data:
        config["data"]["path"] = args.data
    return config


def stage(args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in this process; returns its figures."""
    work = Path(args.work)
    base = work / "base"
    load_before = os.getloadavg()
    if args.stage == "base":
        bench = Bench()
        config = run_config(args, args.iterations)
        folder, resume = base, None
    else:
        bench = Bench(grow_to=int(args.stage), seed=args.seed)
        done = int(find_checkpoint(base).name.split("-")[1]) + 1
        config = run_config(args, done + args.iterations)
        folder, resume = work / f"size-{args.stage}", base
        shutil.rmtree(folder, ignore_errors=True)
    pm = get_plugin_manager(config, plugins=[("bench", bench)])
    lines: list[str] = []
    loop = CodeItLoop(config, pm, work_dir=folder, resume_from=resume, log=lines.append)
    t0 = time.perf_counter()
    loop.run()
    wall = time.perf_counter() - t0
    iterations = []
    first = loop.resumed_iterations
    for i, m in enumerate(loop.state.history[first:], start=first):
        train = m.get("train_seconds", 0.0)
        inner = m.get("train_encode_seconds", 0.0) + m.get("train_tokenise_seconds", 0.0) + \
            m.get("train_batch_seconds", 0.0)
        phases = {"buffer_sample": train - inner, "encode": m.get("train_encode_seconds", 0.0),
                  "tokenise": m.get("train_tokenise_seconds", 0.0), "batch": m.get("train_batch_seconds", 0.0),
                  "programs": m["sample_seconds"], "execute": m["execute_seconds"], "relabel": m["relabel_seconds"],
                  "score": m["iteration_seconds"] - train - m["sample_seconds"] - m["execute_seconds"]
                  - m["relabel_seconds"],
                  "artifacts": bench.artifact_seconds.get(i, 0.0), "checkpoint": bench.checkpoint_seconds.get(i, 0.0),
                  "checkpoint_write": bench.checkpoint_write_seconds.get(i, 0.0)}
        iterations.append({"iteration": i, "phases": phases, "buffer_size": m["buffer_size"],
                           "buffer_policy": m["buffer_policy"], "experiences": m["train_experiences"],
                           "programs": m["programs_distinct"], "new_entries": m["new_entries"]})
    own, child = peak_rss_gb()
    init = loop.state.init_metrics if args.stage == "base" else {}
    return {"stage": args.stage, "iterations": iterations, "wall_seconds": wall, "peak_rss_gb": own,
            "worker_peak_rss_gb": child, "init": dict(init), "mutate_seconds": bench.mutate_seconds,
            "grow": bench.grow, "load_before": load_before, "load_after": os.getloadavg(),
            "checkpoint_mb": _folder_mb(find_checkpoint(folder)), "log": lines[-3:]}


def _folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- report -----------------------------------------------------------------------------------------


def print_stage(result: Mapping[str, Any]) -> None:
    la = ("load average " + " ".join(f"{x:.2f}" for x in result["load_before"]) + " -> "
          + " ".join(f"{x:.2f}" for x in result["load_after"]))
    its = result["iterations"]
    name = "base run" if result["stage"] == "base" else f"buffer grown to {int(result['stage']):,} entries"
    print(f"\n== {name}  ({la}; 2 cores shared: figures are wall-clock seconds)")
    if result["init"]:
        init = result["init"]
        ok = "ok" if init["init_seconds"] <= TARGET_INIT_S else "MISSES"
        print(f"initial buffer: {init['init_seconds']:.1f} s (target <= {TARGET_INIT_S:.0f} s: {ok}) -- "
              f"{init.get('init_initial', 0):g} training programs, {init.get('init_mutated', 0):g} mutated tasks "
              f"(mutation {result['mutate_seconds']:.1f} s, execution + relabelling the rest); "
              f"buffer {init['init_buffer_size']:g}")
    if result["grow"]:
        print(f"(grown in {result['grow']['grow_seconds']:.1f} s, not timed below)")
    header = f"{'phase':<16}" + "".join(f"{'it ' + str(it['iteration']):>10}" for it in its)
    print(header)
    for phase in PHASES:
        note = {"programs": "  (the network's stand-in; not counted)",
                "checkpoint": "  (what the run waited for)",
                "checkpoint_write": "  (in a background thread, during the next iteration; not counted)"}.get(phase, "")
        print(f"{phase:<16}" + "".join(f"{it['phases'][phase]:>10.2f}" for it in its) + note)
    cpu = [sum(it["phases"][p] for p in CPU_PHASES) for it in its]
    print(f"{'all but network':<16}" + "".join(f"{c:>10.2f}" for c in cpu)
          + f"  (target <= {TARGET_CPU_S:.0f} s)")
    print(f"{'buffer entries':<16}" + "".join(f"{it['buffer_size']:>10,.0f}" for it in its))
    print(f"{'experiences':<16}" + "".join(f"{it['experiences']:>10,.0f}" for it in its))
    print(f"{'programs run':<16}" + "".join(f"{it['programs']:>10,.0f}" for it in its))
    print(f"peak RSS {result['peak_rss_gb']:.2f} GB (largest worker {result['worker_peak_rss_gb']:.2f} GB; "
          f"target <= {TARGET_RSS_GB:.0f} GB); checkpoint {result['checkpoint_mb']:.0f} MB on disk")


def summary(results: list[Mapping[str, Any]]) -> None:
    print("\n== summary (per meta-iteration; checkpoint: full = first iteration of a stage, incremental = last)")
    print(f"{'entries':>10} {'sample':>7} {'encode':>7} {'tokens':>7} {'batch':>7} {'execute':>8} {'relabel':>8} "
          f"{'score':>6} {'artif':>6} {'ckpt full':>9} {'ckpt inc':>9} {'bg full':>8} {'bg inc':>7} {'CPU s':>7} "
          f"{'RSS GB':>7}")
    rows = []
    for r in results:
        its = r["iterations"]
        last = its[-1]
        p = last["phases"]
        cpu = sum(p[k] for k in CPU_PHASES)
        rows.append((last["buffer_size"], p, cpu, its[0]["phases"]["checkpoint"] + its[0]["phases"]["checkpoint_write"],
                     r["peak_rss_gb"]))
        print(f"{last['buffer_size']:>10,.0f} {p['buffer_sample']:>7.2f} {p['encode']:>7.2f} {p['tokenise']:>7.2f} "
              f"{p['batch']:>7.2f} {p['execute']:>8.2f} {p['relabel']:>8.2f} {p['score']:>6.2f} "
              f"{p['artifacts']:>6.2f} {its[0]['phases']['checkpoint']:>9.2f} {p['checkpoint']:>9.2f} "
              f"{its[0]['phases']['checkpoint_write']:>8.2f} {p['checkpoint_write']:>7.2f} {cpu:>7.2f} "
              f"{r['peak_rss_gb']:>7.2f}")
    if len(rows) >= 2:
        (n0, p0, c0, f0, m0), (n1, p1, c1, f1, m1) = rows[0], rows[-1]
        ratio = n1 / n0
        print(f"growth from {n0:,.0f} to {n1:,.0f} entries (x{ratio:.1f}): CPU time x{c1 / c0:.2f}, "
              f"full checkpoint x{f1 / max(f0, 1e-9):.2f}, buffer sample x{p1['buffer_sample'] / max(p0['buffer_sample'], 1e-9):.2f}, "
              f"peak RSS x{m1 / m0:.2f} (linear or better: each <= x{ratio:.1f})")
    print(load())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutated", type=int, default=19_200, help="mutated tasks in the initial buffer")
    parser.add_argument("--search-tasks", type=int, default=None, help="search tasks (default: all 400)")
    parser.add_argument("--per-task", type=int, default=24, help="programs sampled per search task")
    parser.add_argument("--samples", type=int, default=100_000, help="training experiences per meta-iteration")
    parser.add_argument("--sizes", default="20000,200000,1000000", help="buffer sizes to grow to (comma-separated)")
    parser.add_argument("--iterations", type=int, default=2, help="meta-iterations per stage")
    parser.add_argument("--data", help="CodeIt data folder (default: $CODEIT_DATA or ../shared/codeit-data)")
    parser.add_argument("--work", help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", help="write every stage's figures to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse-base", action="store_true",
                        help="skip the base stage, reusing the base run already in --work")
    parser.add_argument("--max-rss-gb", type=float, default=7.5,
                        help="kill a stage whose resident memory passes this (the machine may be shared)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage is not None:
        print("RESULT " + json.dumps(stage(args)), flush=True)
        return 0

    print(f"bench_meta_iteration: {os.cpu_count()} CPUs, {load()}", flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="codeit-bench-meta-"))
    results = []
    try:
        if args.reuse_base and not args.work:
            parser.error("--reuse-base needs --work")
        stages = [] if args.reuse_base else ["base"]
        stages += [s.strip() for s in args.sizes.split(",") if s.strip()]
        for name in stages:
            cmd = [sys.executable, __file__, "--stage", name, "--work", str(work), *_passthrough(args)]
            stdout, stderr, code = _run_guarded(cmd, args.max_rss_gb)
            found = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
            if code != 0 or not found:
                sys.stderr.write(stdout[-4000:] + stderr[-4000:])
                raise SystemExit(f"stage {name} failed (exit {code})")
            result = json.loads(found[-1][7:])
            results.append(result)
            print_stage(result)
            sys.stdout.flush()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _run_guarded(cmd: list[str], max_rss_gb: float) -> tuple[str, str, int]:
    """Run a stage, killing it if its resident memory passes ``max_rss_gb``; (stdout, stderr, exit code)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/statm") as f:
                    rss = int(f.read().split()[1]) * resource.getpagesize() / 2**30
            except OSError:
                rss = 0.0
            if rss > max_rss_gb:
                proc.kill()
                proc.wait()
                err.write(f"\nstage killed: resident memory {rss:.1f} GB > --max-rss-gb {max_rss_gb}\n")
                break
            time.sleep(0.5)
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), proc.returncode


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = ["--mutated", str(args.mutated), "--per-task", str(args.per_task), "--samples", str(args.samples),
           "--iterations", str(args.iterations), "--seed", str(args.seed)]
    if args.search_tasks:
        out += ["--search-tasks", str(args.search_tasks)]
    if args.data:
        out += ["--data", args.data]
    return out


if __name__ == "__main__":
    sys.exit(main())
