"""Replay-buffer benchmark: add 1,000,000 entries, then draw 100,000 prioritised samples.

Entries are added in batches (as the loop adds a meta-iteration's relabelled programs), with the
priorities of the built-in ``performance`` scheme through the plugin hook.  Every entry has its own
program text and relabelled task; the grids are shared objects from small pools (relabelled tasks
share their parents' input grids; real outputs would add their own size).  Prints the seconds for each step and peak memory.

usage: python benchmarks/bench_buffer.py [--entries N] [--samples N] [--batch N] [--save DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from codeit.plugins import get_plugin_manager
from codeit.run.buffer import Entry, ReplayBuffer
from codeit.run.priority import HookPriority
from codeit.tasks import Example, Task


def rss_peak_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def rss_now_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def make_entries(n: int, rng: np.random.Generator, n_parents: int = 400, start: int = 0):
    """``n`` entries with distinct programs and tasks; grids come from small pools (shared objects)."""
    parents = []
    for p in range(n_parents):
        grid = tuple(tuple(int(c) for c in row) for row in rng.integers(0, 10, size=(5, 5)))
        parents.append((f"parent{p:04d}", (grid, grid[::-1], tuple(r[::-1] for r in grid))))
    accuracy = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], size=n, p=[0.7, 0.15, 0.1, 0.05]).tolist()
    length = rng.integers(5, 150, size=n).tolist()
    iteration = rng.integers(0, 100, size=n).tolist()
    source = np.where(rng.random(n) < 0.98, "policy", "mutated").tolist()
    outputs = [tuple(tuple(row) for row in rng.integers(0, 10, size=(2, 3)).tolist()) for _ in range(1000)]
    for k in range(n):
        i = start + k
        key, inputs = parents[i % n_parents]
        out = outputs[i % 1000]
        program = f"x1 = crop(I, ({i % 30}, {i // 30 % 30}), (3, 3))\nO = replace(x1, {i % 10}, {i})"
        task = Task(f"{key}/{i:x}", (Example(inputs[0], out), Example(inputs[1], out)), (), program)
        yield Entry(task, program, key, source[k], accuracy[k], length[k], iteration[k], accuracy[k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000, help="entries per add_many call")
    parser.add_argument("--save", metavar="DIR", help="also time save and load to DIR")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    pm = get_plugin_manager({"plugins": {"priority": {"performance": 1.0}}})
    buffer = ReplayBuffer(HookPriority(pm, {"plugins": {"priority": {"performance": 1.0}}}),
                          capacity=max(2, 2 * args.entries))
    rss0 = rss_now_mib()

    t0 = time.perf_counter()
    entries = list(make_entries(args.entries, rng))
    t_make = time.perf_counter() - t0
    rss_entries = rss_now_mib()

    t0 = time.perf_counter()
    for start in range(0, len(entries), args.batch):
        buffer.add_many(entries[start:start + args.batch])
    t_add = time.perf_counter() - t0
    assert len(buffer) == args.entries, len(buffer)
    rss_buffer = rss_now_mib()

    t0 = time.perf_counter()
    sample = buffer.sample(args.samples, part="policy", rng=rng)
    t_sample = time.perf_counter() - t0
    n_policy = buffer.count("policy")
    t0 = time.perf_counter()
    split = buffer.sample_parts({"policy": args.samples * 9 // 10, "initial": args.samples // 10}, rng=rng)
    t_parts = time.perf_counter() - t0
    acc_sampled = float(np.mean([e.accuracy for e in sample]))

    print(f"entries created:            {args.entries:>9,}  {t_make:7.2f} s  (caller's cost, not the buffer's)")
    print(f"add_many (batches of {args.batch:,}): {args.entries:>9,}  {t_add:7.2f} s  "
          f"({1e6 * t_add / args.entries:.2f} us/entry)")
    print(f"sample from policy part:    {args.samples:>9,}  {t_sample:7.3f} s  (of {n_policy:,}; mean accuracy "
          f"{acc_sampled:.3f} vs {float(buffer.columns()['accuracy'].mean()):.3f} in the buffer)")
    print(f"sample 90%/10% by part:     {len(split):>9,}  {t_parts:7.3f} s")
    if args.save:
        t0 = time.perf_counter()
        buffer.save(args.save)
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = ReplayBuffer.load(args.save, buffer.priority)
        t_load = time.perf_counter() - t0
        assert len(loaded) == len(buffer)
        assert buffer.add_many(make_entries(args.batch, rng, start=args.entries)) == args.batch
        t0 = time.perf_counter()
        buffer.save(args.save)
        t_again = time.perf_counter() - t0
        print(f"save / load:                {t_save:7.2f} s / {t_load:.2f} s; save after adding {args.batch:,} "
              f"more: {t_again:.2f} s")
    print(f"memory: RSS {rss0:.0f} MiB at start, {rss_entries:.0f} MiB with the entries, "
          f"{rss_buffer:.0f} MiB with the buffer (+{rss_buffer - rss_entries:.0f} MiB, "
          f"{(rss_buffer - rss_entries) * 2**20 / max(1, args.entries):.0f} B/entry); peak RSS {rss_peak_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
