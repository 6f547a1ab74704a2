"""Sampler ``random``: well-typed random straight-line programs, built line by line on a task's input.

Seeds the replay buffer when no published programs are available (docs/algorithm.md §6): hindsight
relabelling turns every program with valid outputs into a training task it solves.

A program is grown on the task's first demonstration input.  Each step picks a primitive, fills its
parameters with terms whose type fits (:mod:`codeit.search.inference`: earlier variables by the concrete type
of their value -- recent ones preferred --, constants, and primitives of the right arity where a
function is expected), runs the new line at once and keeps it only if it succeeds; at least one
argument is the most recent variable (``I`` for the first line), so each line builds on the one before.  The last
line must give a valid grid of fewer than 1,000 cells that differs from the input.  Dead lines are
dropped (:meth:`~codeit.program.Program.normalise`), and a program is kept only if it gives a valid
grid on every demonstration input of the task.

Run config, ``config["random_programs"]`` (all optional): ``per_task`` programs per task (4),
``length`` lines per program, an int or ``[min, max]`` (``[1, 6]``), ``attempts`` programs tried per
wanted program (20), ``tries`` choices tried per line (30).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codeit.dsl import CONSTANT_TYPES, PRIMITIVES
from codeit.execution.interrupt import guard
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits
from codeit.execution.shared_eval import ERROR, NodeTable
from codeit.grids import check_grid
from codeit.hookspecs import hookimpl
from codeit.program import INPUT, OUTPUT, Line, Program
from codeit.search.inference import GRID, callable_type, fits, may_produce, value_type
from codeit.search.mutation import MAX_CELLS, grid_cells

__all__ = ["FUNCTION_ARITY", "RandomProgramSampler", "codeit_sample_programs"]

NAME = "random"

#: Arity of the function a higher-order primitive expects for each of its ``Callable`` parameters.
FUNCTION_ARITY: dict[tuple[str, str], int] = {
    ("order", "compfunc"): 1, ("valmax", "compfunc"): 1, ("valmin", "compfunc"): 1,
    ("argmax", "compfunc"): 1, ("argmin", "compfunc"): 1, ("sfilter", "condition"): 1,
    ("mfilter", "function"): 1, ("extract", "condition"): 1, ("compose", "outer"): 1,
    ("compose", "inner"): 1, ("chain", "h"): 1, ("chain", "g"): 1, ("chain", "f"): 1,
    ("matcher", "function"): 1, ("rbind", "function"): 2, ("lbind", "function"): 2,
    ("power", "function"): 1, ("fork", "outer"): 2, ("fork", "a"): 1, ("fork", "b"): 1,
    ("apply", "function"): 1, ("mapply", "function"): 1, ("papply", "function"): 2,
    ("mpapply", "function"): 2, ("prapply", "function"): 2,
}

_GRID_MAKERS = tuple(name for name, p in PRIMITIVES.items() if may_produce(p.returns, GRID))
_CONSTANTS = tuple((type_name, name) for type_name, names in CONSTANT_TYPES.items() for name in names)


def _by_arity() -> dict[int, tuple[str, ...]]:
    table: dict[int, list[str]] = {}
    for name, p in PRIMITIVES.items():
        table.setdefault(p.arity, []).append(name)
    return {k: tuple(v) for k, v in table.items()}


_PRIMITIVES_BY_ARITY = _by_arity()


class RandomProgramSampler:
    """Random typed programs for input grids (module docstring)."""

    def __init__(self, limits: ExecutionLimits | None = None, tries: int = 30) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.tries = tries

    def sample(self, inputs: Sequence[Any], length: int, rng: Any) -> Program | None:
        """One program of at most ``length`` lines grown on ``inputs[0]`` and valid on all ``inputs``
        (non-identity on the first), or ``None`` if this attempt failed."""
        table = NodeTable(self.limits)
        env = table.new_env(inputs[0])
        names: list[str] = [INPUT]
        types: dict[str, str] = {INPUT: GRID}
        lines: list[Line] = []
        calls: set[str] = set()
        with guard(self.limits):
            for step in range(length):
                last = step == length - 1
                target = OUTPUT if last else f"x{step + 1}"
                for _ in range(self.tries):
                    line = self._propose(target, names, types, rng, last)
                    if line is None or line.call in calls:
                        continue
                    slots = table.add([*lines, line])
                    table.extend(env)
                    value = table.run(slots, env)
                    if value is ERROR or value is None:
                        continue
                    if last and not self._good_output(value, inputs[0]):
                        continue
                    lines.append(line)
                    calls.add(line.call)
                    names.append(target)
                    types[target] = value_type(value)
                    break
                else:
                    return None
            program = Program.from_lines(lines).normalise()
            slots = table.add(program)
            for grid in inputs[1:]:
                value = table.run(slots, table.new_env(grid))
                if value is ERROR or check_grid(value)[1] is not None or grid_cells(value) >= MAX_CELLS:
                    return None
        return program

    @staticmethod
    def _good_output(value: Any, grid: Any) -> bool:
        out, reason = check_grid(value)
        return reason is None and grid_cells(out) < MAX_CELLS and out != grid

    def _propose(self, target: str, names: list[str], types: dict[str, str], rng: Any, last: bool) -> Line | None:
        """A random line whose arguments include the most recent variable (so the lines chain)."""
        pool = _GRID_MAKERS if last else tuple(PRIMITIVES)
        name = pool[int(rng.integers(len(pool)))]
        prim = PRIMITIVES[name]
        recent = names[-1]
        slots = [i for i, (_, declared) in enumerate(prim.params) if declared != "Callable"
                 and (fits(types[recent], declared) or (declared == "Any" and types[recent] != "Any"))]
        if not slots:
            return None
        chosen = slots[int(rng.integers(len(slots)))]
        args = []
        for i, (pname, declared) in enumerate(prim.params):
            arity = FUNCTION_ARITY.get((name, pname))
            arg = recent if i == chosen else self._argument(declared, arity, names, types, rng)
            if arg is None:
                return None
            args.append(arg)
        return Line(target, name, tuple(args))

    @staticmethod
    def _argument(declared: str, arity: int | None, names: list[str], types: dict[str, str],
                  rng: Any) -> str | None:
        if declared == "Callable":
            want = callable_type(arity or 1)
            variables = [v for v in names if types[v] == want]
            if variables and rng.random() < 0.5:
                return variables[int(rng.integers(len(variables)))]
            options = _PRIMITIVES_BY_ARITY.get(arity or 1, ())
            return options[int(rng.integers(len(options)))] if options else None
        variables = [v for v in names if fits(types[v], declared) or (declared == "Any" and types[v] != "Any")]
        constants = [c for t, c in _CONSTANTS if fits(t, declared)] if declared != "Any" else []
        if variables and (not constants or rng.random() < 0.7):
            # prefer recent variables: weight k+1 for the k-th
            weights = [i + 1.0 for i in range(len(variables))]
            total = sum(weights)
            r = rng.random() * total
            for v, w in zip(variables, weights):
                r -= w
                if r <= 0:
                    return v
            return variables[-1]
        if constants:
            return constants[int(rng.integers(len(constants)))]
        return None

    def programs(self, inputs: Sequence[Any], n: int, rng: Any, length: int | Sequence[int] = (1, 6),
                 attempts: int = 20) -> list[str]:
        """Up to ``n`` distinct program texts for ``inputs`` (one task's demonstration inputs)."""
        low, high = (length, length) if isinstance(length, int) else (int(length[0]), int(length[1]))
        found: list[str] = []
        for _ in range(n * attempts):
            if len(found) >= n:
                break
            size = int(rng.integers(low, high + 1))
            program = self.sample(inputs, size, rng)
            if program is not None and program.text not in found:
                found.append(program.text)
        return found


def _settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    section = dict((config or {}).get("random_programs") or {})
    return {"per_task": int(section.get("per_task", 4)), "length": section.get("length", (1, 6)),
            "attempts": int(section.get("attempts", 20)), "tries": int(section.get("tries", 30))}


@hookimpl
def codeit_sample_programs(name: str, tasks: Sequence[Any], model: Any, iteration: int, rng: Any,
                           config: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Random typed programs for each task (sampler ``"random"``)."""
    if name != NAME:
        return None
    settings = _settings(config)
    # the run's limits, as for every other execution of the run (a test run under generous limits
    # must not lose a candidate line to a loaded machine's 0.25 s default)
    limits = ExecutionLimits.from_config((config or {}).get("execution") or {})
    sampler = RandomProgramSampler(limits, tries=settings["tries"])
    result = {}
    for task in tasks:
        inputs = [e.input for e in task.train]
        result[task.key] = sampler.programs(inputs, settings["per_task"], rng, settings["length"],
                                            settings["attempts"])
    return result
