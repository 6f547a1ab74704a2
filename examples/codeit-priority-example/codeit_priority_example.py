"""Example plugin: priority scheme "accuracy-squared" and a mirror-swap mutator.

Select the scheme in a run's config with ``plugins.priority={"accuracy-squared": 1.0}`` (or mix it
with others, e.g. ``{"accuracy-squared": 0.7, "length": 0.3}``).  The mutator takes part whenever
programs are mutated; disable the whole plugin with ``plugins.disable=["priority-example"]``.
"""

from __future__ import annotations

import numpy as np

from codeit.plugins import hookimpl

SCHEME = "accuracy-squared"

#: primitives with the same signature that the mutator swaps for one another
SWAPS = {"vmirror": "hmirror", "hmirror": "vmirror", "dmirror": "cmirror", "cmirror": "dmirror",
         "rot90": "rot270", "rot270": "rot90"}


@hookimpl
def codeit_priority(name, columns, config):
    """Scores in [0, 1]: the square of the demonstration accuracy, sharper than "performance"."""
    if name != SCHEME:
        return None  # not ours: let another plugin answer
    accuracy = np.clip(columns["accuracy"].astype(np.float64), 0.0, 1.0)
    return accuracy * accuracy


@hookimpl
def codeit_mutate(program, task, rng, config):
    """One variant per swappable primitive call in ``program``."""
    lines = program.split("\n")
    variants = []
    for i, line in enumerate(lines):
        target, _, call = line.partition(" = ")
        function = call.partition("(")[0]
        if function in SWAPS:
            new_line = f"{target} = {SWAPS[function]}{call[len(function):]}"
            variants.append("\n".join(lines[:i] + [new_line] + lines[i + 1:]))
    rng.shuffle(variants)
    return variants
