"""The mutation baseline's mutant sequence (docs/mutation.md, step 2) and its chunk files.

Each seed program yields a deterministic stream of variants: a worker asks the ``codeit_mutate``
hooks (the mutators the run's ``plugins`` config selects, as in the loop) for ``n`` variants with a
generator seeded by ``(S, crc32(key))``, and keeps those that pass
:class:`codeit.search.mutation.VariantFilter` on the seed task's inputs, in the order proposed
(:func:`mutate_seed`).  The global sequence takes one variant from each seed in turn -- round ``r``
visits the seeds in an order drawn from ``(S, r)`` -- skipping programs already in it, until ``N``
(:func:`generate_mutants`); it depends on neither ``N`` nor the number of workers, so a larger ``N``
extends the same sequence.  It is saved in chunks (``OUT/mutated/chunk_XXXX.json``: CodeIt JSON
tasks whose examples are the parent's inputs with the variant's outputs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from codeit.baseline.pool import BaselinePool
from codeit.execution.limits import ExecutionLimits
from codeit.files import atomic_write
from codeit.grids import Grid
from codeit.program import Program, ProgramError, parse
from codeit.search.inference import InferenceError
from codeit.search.mutation import VariantFilter
from codeit.tasks import Task, program_body, task_from_codeit_dict

__all__ = ["Chunk", "MutateRequest", "MutatedProgram", "SeedVariants", "generate_mutants", "load_chunk",
           "load_chunks", "mutate_seed", "mutated_task", "progress_bar", "stream_seed", "write_chunk"]


@dataclass(frozen=True)
class MutatedProgram:
    """One variant of a seed program: its text, the seed's key, its outputs on the seed task's
    inputs (demonstrations, then tests; ``None`` where a test input gave no valid grid) and, when its
    mutator says, the edit that made it (``(line, position, replacement)``)."""

    program: str
    parent: str
    outputs: tuple[Grid | None, ...]
    mutation: tuple[int, int, str] | None = None


@dataclass(frozen=True)
class MutateRequest:
    """A worker message: the first ``n`` variants of ``task``'s program, drawn with ``seed``."""

    task: Task
    n: int
    seed: tuple[int, int]


@dataclass(frozen=True)
class SeedVariants:
    """A worker's answer to a :class:`MutateRequest`: the variants kept, whether that is all there is
    (fewer than asked for), and why there are none if the seed cannot be mutated."""

    key: str
    variants: tuple[MutatedProgram, ...]
    exhausted: bool
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """One chunk of the sequence as saved: its number, its programs and their parents' keys."""

    index: int
    programs: tuple[str, ...]
    parents: tuple[str, ...]

    @cached_property
    def hash(self) -> str:
        """A short hash of the programs (score files are only valid for the programs they scored)."""
        return hashlib.sha1("\n\n".join(self.programs).encode()).hexdigest()[:16]


def stream_seed(seed: int, key: str) -> tuple[int, int]:
    """The generator seed of a seed program's stream."""
    return (seed, zlib.crc32(key.encode()))


# --------------------------------------------------------------------------------------------------
# in a worker

#: ``propose(task, rng, n)``: the program texts the mutators propose for ``task`` (the hooks, called)
Proposer = Callable[[Task, Any, int], Iterable[str]]


def mutate_seed(request: MutateRequest, propose: Proposer, limits: ExecutionLimits,
                tick: Callable[[], None] | None = None) -> SeedVariants:
    """The first ``request.n`` proposals for ``request.task`` that pass the variant filter, in the
    order proposed (``tick`` after each tried).  The seed is exhausted when the mutators propose
    fewer programs than asked for.  A seed whose program fails on one of its own demonstrations
    cannot be mutated (``error``)."""
    task = request.task
    start = time.perf_counter()
    inputs = [e.input for e in task.train] + [e.input for e in task.test]
    try:
        kept_by = VariantFilter(task.program, inputs, len(task.train), limits)
    except InferenceError as err:
        return SeedVariants(task.key, (), True, str(err))
    rng = np.random.default_rng(list(request.seed))
    kept: list[MutatedProgram] = []
    proposed = 0
    for text in propose(task, rng, request.n):
        if len(kept) >= request.n:
            break
        proposed += 1
        if tick is not None:
            tick()
        try:
            program = parse(text).normalise()
        except ProgramError:
            continue
        outputs = kept_by.keep(program)
        if outputs is not None:
            kept.append(MutatedProgram(program.text, task.key, outputs, getattr(text, "mutation", None)))
    exhausted = len(kept) < request.n and proposed < request.n
    return SeedVariants(task.key, tuple(kept), exhausted, None, round(time.perf_counter() - start, 3))


# --------------------------------------------------------------------------------------------------
# in the parent


def progress_bar(total: int, desc: str, unit: str, enabled: bool) -> Any:
    """A tqdm bar on stderr (``None`` when disabled or tqdm is missing)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, smoothing=0.1, dynamic_ncols=tty, mininterval=0.5 if tty else 30)


def generate_mutants(seeds: Sequence[Task], n: int, pool: BaselinePool, seed: int = 0, progress: bool = False,
                     log: Callable[[str], None] = print) -> list[MutatedProgram]:
    """The first ``n`` programs of the global mutation sequence (module docstring)."""
    streams: dict[str, tuple[MutatedProgram, ...]] = {t.key: () for t in seeds}
    exhausted: dict[str, bool] = {t.key: False for t in seeds}
    errors: dict[str, str] = {}
    by_key = {t.key: t for t in seeds}
    per_seed = max(1, math.ceil(n / max(1, len(seeds)) * 1.25) + 2)
    while True:
        wanted = [k for k in streams if not exhausted[k] and len(streams[k]) < per_seed]
        if wanted:
            bar = progress_bar(len(wanted), "mutating", "seed", progress)
            count = [0]

            def on_result(key: str, answer: SeedVariants, bar=bar, count=count) -> None:
                # asked for more and given no more: nothing more to come from this seed either
                exhausted[key] = answer.exhausted or len(answer.variants) <= len(streams[key])
                streams[key] = answer.variants
                if answer.error:
                    errors[key] = answer.error
                count[0] += len(answer.variants)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(mutants=count[0], refresh=False)

            def on_failure(key: str, why: str, bar=bar) -> None:
                exhausted[key] = True
                errors[key] = why
                if bar is not None:
                    bar.update(1)

            pool.run([(k, MutateRequest(by_key[k], per_seed, stream_seed(seed, k))) for k in wanted],
                     on_result, on_failure)
            if bar is not None:
                bar.close()
        sequence, short = _interleave([t.key for t in seeds], streams, exhausted, n, seed)
        if len(sequence) >= n or not short:
            break
        per_seed *= 2  # some seeds still have variants: ask them for more (same streams, longer)
    for key, why in sorted(errors.items()):
        log(f"seed {key}: no mutants ({why})")
    if len(sequence) < n:
        log(f"warning: only {len(sequence)} distinct mutated programs exist for these seeds (asked for {n})")
    return sequence


def _interleave(keys: Sequence[str], streams: dict[str, tuple[MutatedProgram, ...]], exhausted: dict[str, bool],
                n: int, seed: int) -> tuple[list[MutatedProgram], bool]:
    """Round-robin over the seeds' streams; returns (sequence, a non-exhausted stream ran out)."""
    sequence: list[MutatedProgram] = []
    seen: set[str] = set()
    r = 0
    longest = max((len(s) for s in streams.values()), default=0)
    while len(sequence) < n and r < longest:
        order = np.random.default_rng([seed, r]).permutation(len(keys))
        for i in order:
            key = keys[i]
            stream = streams[key]
            if r >= len(stream):
                if not exhausted[key]:
                    return sequence, True
                continue
            variant = stream[r]
            if variant.program in seen:
                continue
            seen.add(variant.program)
            sequence.append(variant)
            if len(sequence) >= n:
                break
        r += 1
    short = len(sequence) < n and any(not exhausted[k] for k in keys)
    return sequence, short


def mutated_task(variant: MutatedProgram, parent: Task, index: int) -> dict[str, Any]:
    """A CodeIt JSON task object for one mutated program (examples: the parent's inputs with the
    program's outputs; test inputs without a valid output are left out)."""
    key = f"{parent.key}_mut{index}"
    outputs = variant.outputs
    n_train = len(parent.train)

    def example(grid, out):
        return {"input": [list(r) for r in grid], "output": [list(r) for r in out]}

    train = [example(e.input, o) for e, o in zip(parent.train, outputs[:n_train])]
    test = [example(e.input, o) for e, o in zip(parent.test, outputs[n_train:]) if o is not None]
    program = Program.from_lines(parse(variant.program).lines).to_function(f"solve_{key}")
    mutation = None if variant.mutation is None else list(variant.mutation)
    return {"program": program, "training_examples": train, "test_examples": test, "task_key": key,
            "extra_info": {"source": "mutated", "parent": parent.key, "index": index, "mutation": mutation}}


def chunk_path(out: Path, index: int) -> Path:
    return out / "mutated" / f"chunk_{index:04d}.json"


def write_chunk(out: Path, index: int, variants: Sequence[MutatedProgram], parents: dict[str, Task],
                first_index: int) -> Chunk:
    """Save one chunk of the sequence (its first program has the global index ``first_index``)."""
    tasks = [mutated_task(v, parents[v.parent], first_index + i) for i, v in enumerate(variants)]
    atomic_write(chunk_path(out, index), json.dumps({"chunk": index, "size": len(tasks), "tasks": tasks}))
    return Chunk(index, tuple(program_body(t["program"]) for t in tasks), tuple(v.parent for v in variants))


def load_chunk(out: Path, index: int, size: int) -> Chunk | None:
    """A chunk saved before, if it holds ``size`` programs."""
    path = chunk_path(out, index)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("size") != size:
        return None
    return Chunk(index, tuple(program_body(t["program"]) for t in data["tasks"]),
                 tuple(t["extra_info"]["parent"] for t in data["tasks"]))


def load_chunks(folder: str | os.PathLike) -> list[Task]:
    """Every mutated task of a baseline's ``mutated/`` folder (or its output folder), in order."""
    folder = Path(folder)
    if (folder / "mutated").is_dir():
        folder = folder / "mutated"
    tasks = []
    for path in sorted(folder.glob("chunk_*.json")):
        with open(path, encoding="utf-8") as f:
            for obj in json.load(f)["tasks"]:
                tasks.append(task_from_codeit_dict(obj, source=str(path)))
    return tasks
