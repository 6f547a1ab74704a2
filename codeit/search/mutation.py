"""Depth-1 program mutation (docs/algorithm.md §4, mutation baseline): one primitive call or one argument
replaced by a type-compatible alternative, filtered by running the variant.

Given a program and the inputs of the task it was written for, :class:`Depth1Mutator`

1. runs the program on every input (:class:`codeit.execution.shared_eval.NodeTable`) and infers the type of each
   variable from the values (:func:`codeit.search.inference.infer_types`); a program that fails on a
   demonstration input is rejected with :class:`codeit.search.inference.InferenceError`;
2. lists the candidate mutations, grouped in *buckets*, one per (line, position): position ``-1`` is
   the callee, ``0..n-1`` the arguments (:func:`candidate_mutations`, rules below);
3. draws mutations from a seeded generator -- a non-empty bucket uniformly, then a candidate of it
   uniformly, without replacement -- applies each, drops dead lines and renumbers
   (:meth:`Program.normalise`), and runs the variant on the inputs, reusing every line it shares with
   the parent;
4. keeps a variant if it gives a valid grid of fewer than 1,000 cells on every demonstration input,
   differs from the input on at least one of them (not the identity), and its outputs on all the
   inputs differ from the parent's and from every variant kept before (no equivalent programs):
   :class:`VariantFilter`, the rule the mutation baseline also applies to whatever mutators propose.

The stream of kept variants depends only on the program, the inputs and the seed, so asking for
more variants extends the same sequence (:meth:`Depth1Mutator.variants` with a larger ``n``).

**Candidate rules** (types from :mod:`codeit.search.inference`), for the line ``x = f(a1, …, an)``:

* *callee*: a primitive ``g != f`` of arity ``n`` such that every argument's type fits ``g``'s
  declared parameter type and ``g``'s declared return type may produce ``x``'s type (``O``: a
  ``Grid``); if ``f`` is a variable holding a function, also the earlier variables holding a function
  of the same arity;
* *argument* ``ai`` of type ``t``, passed to a parameter declared ``p``:

  - ``t`` a function type (a primitive passed by name, or a variable holding a function): the other
    primitives of the same arity -- when ``ai`` is a primitive, only those whose declared parameter
    and return types overlap with ``ai``'s -- and earlier variables holding a function of that arity;
  - otherwise the earlier variables (and ``I``) and the constants whose type fits ``p``; where ``p``
    is generic (``Any``, ``Container``, ``ContainerContainer``, ``FrozenSet``, ``Tuple``,
    ``TupleTuple``) or unknown (callee is a variable) they must fit ``t`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from codeit.config import PAPER_CONFIG
from codeit.dsl import CONSTANT_TYPES, PRIMITIVES
from codeit.execution.interrupt import guard
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits
from codeit.execution.shared_eval import ERROR, NodeTable
from codeit.grids import check_grid
from codeit.program import INPUT, OUTPUT, Line, Program, ProgramError, parse
from codeit.search.inference import (
    CALLABLE,
    GRID,
    InferenceError,
    ProgramTypes,
    admits,
    fits,
    infer_types,
    may_produce,
)

__all__ = ["MAX_CELLS", "Depth1Mutator", "Mutant", "MutatedText", "VariantFilter", "apply_mutation",
           "candidate_mutations", "grid_cells", "mutation_config"]

#: Outputs must have fewer cells than this (docs/algorithm.md §4 step 4).
MAX_CELLS = 1000

_GENERIC = frozenset({"Any", "Container", "ContainerContainer", "FrozenSet", "Tuple", "TupleTuple", CALLABLE})


def _callable_arity(type_name: str) -> int | None:
    """The arity of a ``CallableK`` type, ``0`` for plain ``Callable``, ``None`` for non-functions."""
    if not type_name.startswith(CALLABLE):
        return None
    return int(type_name[len(CALLABLE):] or 0)


def _overlaps(a: str, b: str) -> bool:
    return bool(admits(a) & admits(b))


def _signatures_overlap(f: str, g: str) -> bool:
    p, q = PRIMITIVES[f], PRIMITIVES[g]
    return p.arity == q.arity and _overlaps(p.returns, q.returns) and all(
        _overlaps(a, b) for a, b in zip(p.param_types, q.param_types))


def candidate_mutations(program: Program, types: ProgramTypes) -> dict[tuple[int, int], list[str]]:
    """``{(line index, position): [replacement names]}`` for every non-empty bucket, in a fixed order.

    Position ``-1`` replaces the callee, ``i >= 0`` the ``i``-th argument (module docstring).
    """
    buckets: dict[tuple[int, int], list[str]] = {}
    earlier: list[str] = [INPUT]
    for index, line in enumerate(program.lines):
        result = GRID if line.target == OUTPUT else types[line.target]
        arg_types = [types.of(a) for a in line.args]
        n = len(line.args)
        # the callee
        options = []
        for name, prim in PRIMITIVES.items():
            if (name != line.callee and prim.arity == n and may_produce(prim.returns, result)
                    and all(fits(t, p) for t, p in zip(arg_types, prim.param_types))):
                options.append(name)
        if line.callee not in PRIMITIVES:
            want = _callable_arity(types.of(line.callee))
            options += [v for v in earlier if v != line.callee and want and _callable_arity(types[v]) == want]
        if options:
            buckets[(index, -1)] = options
        # the arguments
        declared = PRIMITIVES[line.callee].param_types if line.callee in PRIMITIVES else (None,) * n
        for position, (arg, t, p) in enumerate(zip(line.args, arg_types, declared)):
            options = _argument_options(arg, t, p, earlier, types)
            if options:
                buckets[(index, position)] = options
        earlier.append(line.target)
    return buckets


def _argument_options(arg: str, t: str, p: str | None, earlier: Sequence[str], types: ProgramTypes) -> list[str]:
    arity = _callable_arity(t)
    if arity is not None:
        options = []
        if arity:
            for name, prim in PRIMITIVES.items():
                if name != arg and prim.arity == arity and (arg not in PRIMITIVES or _signatures_overlap(arg, name)):
                    options.append(name)
        options += [v for v in earlier if v != arg and arity and _callable_arity(types[v]) == arity]
        return options
    need = t if p is None or p in _GENERIC else p
    if need == "Any":
        return []
    options = [v for v in earlier if v != arg and fits(types[v], need)]
    options += [c for type_name, names in CONSTANT_TYPES.items() if fits(type_name, need)
                for c in names if c != arg]
    return options


def apply_mutation(program: Program, index: int, position: int, replacement: str) -> Program | None:
    """``program`` with the callee (``position == -1``) or an argument of line ``index`` replaced by
    ``replacement``, normalised; ``None`` if the result is not a valid program."""
    lines = list(program.lines)
    target, callee, args = lines[index]
    if position < 0:
        callee = replacement
    else:
        args = args[:position] + (replacement,) + args[position + 1:]
    lines[index] = Line(target, callee, args)
    try:
        return Program.from_lines(lines).normalise()
    except ProgramError:
        return None


def grid_cells(grid: tuple) -> int:
    return len(grid) * len(grid[0])


@dataclass(frozen=True)
class Mutant:
    """A kept variant: its program text and its outputs on the parent's inputs (``None`` where an
    input beyond the demonstrations gave no valid grid)."""

    program: str
    outputs: tuple[Any, ...]
    mutation: tuple[int, int, str]  # (line index, position, replacement) in the parent


class MutatedText(str):
    """A variant's program text that also says which edit made it: ``mutation`` is ``(line index,
    position, replacement)`` in the parent.  A plain ``str`` to every caller that wants only the text
    (the ``codeit_mutate`` contract); the ``depth1`` plugin returns these when asked
    (``config["mutation"]["provenance"]``, set by the mutation baseline, which records the edit)."""

    mutation: tuple[int, int, str]

    def __new__(cls, text: str, mutation: tuple[int, int, str]) -> Self:
        obj = super().__new__(cls, text)
        obj.mutation = mutation
        return obj


class VariantFilter:
    """Which variants of one program to keep (module docstring, step 4), and their outputs.

    Runs the parent on ``inputs`` once (the first ``n_demonstrations`` -- default: all -- must give
    valid grids, else :class:`InferenceError`); then :meth:`keep` runs a variant reusing every line it
    shares with the parent and with the variants before it, and keeps it if it gives a valid grid of
    fewer than :data:`MAX_CELLS` cells on every demonstration input, is not the identity, and its
    outputs differ from the parent's and from every variant kept before.  The depth-1 mutator and the
    mutation baseline (for whatever the mutators propose) use this one rule.
    """

    def __init__(self, program: Program | str, inputs: Sequence[Any], n_demonstrations: int | None = None,
                 limits: ExecutionLimits | None = None) -> None:
        if isinstance(program, str):
            try:
                program = parse(program)
            except ProgramError as err:
                raise InferenceError(f"cannot parse: {err}") from None
        self.inputs = list(inputs)
        self.n_demos = len(self.inputs) if n_demonstrations is None else n_demonstrations
        if not self.inputs or not self.n_demos:
            raise InferenceError("no demonstration inputs to infer types from")
        self.table = table = NodeTable(limits or DEFAULT_LIMITS)
        slots = table.add(program)
        self.envs: list[list[Any]] = []
        #: per input, the value of each variable of the parent that has one (for type inference)
        self.values: list[dict[str, Any]] = []
        outputs = []
        for number, grid in enumerate(self.inputs):
            env = table.new_env(grid)
            out = table.run(slots, env, stop=False)
            if number < self.n_demos and (out is ERROR or check_grid(out)[1] is not None):
                raise InferenceError(f"the program fails on demonstration input {number + 1}")
            self.envs.append(env)
            outputs.append(_valid(out))
            self.values.append({line.target: env[s] for line, s in zip(program.lines, slots)
                                if table.is_value(env[s])})
        self.parent_outputs = tuple(outputs)
        self._seen = {self.parent_outputs}

    def keep(self, variant: Program) -> tuple[Any, ...] | None:
        """The variant's outputs on the inputs if it is kept (remembered from now on), else ``None``."""
        outputs = self._outputs(variant)
        if outputs is None or outputs in self._seen:
            return None
        self._seen.add(outputs)
        return outputs

    def _outputs(self, variant: Program) -> tuple[Any, ...] | None:
        """The variant's outputs, or ``None`` if it fails the filter on a demonstration input."""
        table = self.table
        slots = table.add(variant)
        outputs = []
        identity = True
        for number, env in enumerate(self.envs):
            table.extend(env)
            out = _valid(table.run(slots, env))
            if number < self.n_demos:
                if out is None:
                    return None
                identity = identity and out == self.inputs[number]
            outputs.append(out)
        if identity:
            return None
        return tuple(outputs)


class Depth1Mutator:
    """Depth-1 mutations of one program at a time (module docstring).

    ``max_attempts`` caps the candidates tried per call of :meth:`variants`.  ``limits`` are the
    execution limits; the caller decides about isolation (see :mod:`codeit.execution.shared_eval`).
    """

    def __init__(self, limits: ExecutionLimits | None = None, max_attempts: int = 2000) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.max_attempts = max_attempts

    def stream(self, program: Program, types: ProgramTypes, rng: Any) -> Iterator[tuple[Program, tuple]]:
        """Distinct mutated programs (normalised, different text from the parent and each other) in
        the order drawn with ``rng`` (a ``numpy.random.Generator``), with their mutation.

        Each draw, without replacement: a bucket (line, position) uniformly among those with
        candidates left, then a candidate of it uniformly.
        """
        buckets = {key: list(options) for key, options in candidate_mutations(program, types).items()}
        keys = list(buckets)
        seen = {program.normalise().text}
        while keys:
            k = int(rng.integers(len(keys)))
            options = buckets[keys[k]]
            replacement = options.pop(int(rng.integers(len(options))))
            index, position = keys[k]
            if not options:
                keys.pop(k)
            mutant = apply_mutation(program, index, position, replacement)
            if mutant is None or mutant.text in seen:
                continue
            seen.add(mutant.text)
            yield mutant, (index, position, replacement)

    def variants(self, program: Program | str, inputs: Sequence[Any], n: int, rng: Any,
                 n_demonstrations: int | None = None, tick: Callable[[], None] | None = None) -> list[Mutant]:
        """Up to ``n`` kept variants of ``program`` (:class:`VariantFilter`).

        ``inputs`` are the parent task's inputs, demonstrations first: the first ``n_demonstrations``
        (default: all) must give valid grids; the others (e.g. test inputs) only contribute outputs.
        ``tick`` is called after each candidate (e.g. a worker's beat).  Raises
        :class:`InferenceError` if the parent fails on a demonstration input.
        """
        if isinstance(program, str):
            try:
                program = parse(program)
            except ProgramError as err:
                raise InferenceError(f"cannot parse: {err}") from None
        with guard(self.limits):
            variants = VariantFilter(program, inputs, n_demonstrations, self.limits)
            types = infer_types(program, variants.values)
            kept: list[Mutant] = []
            for attempt, (mutant, mutation) in enumerate(self.stream(program, types, rng)):
                if len(kept) >= n or attempt >= self.max_attempts:
                    break
                if tick is not None:
                    tick()
                outputs = variants.keep(mutant)
                if outputs is not None:
                    kept.append(Mutant(mutant.text, outputs, mutation))
        return kept


def _valid(value: Any) -> Any:
    """``value`` as a grid if it is a valid grid of fewer than :data:`MAX_CELLS` cells, else ``None``."""
    if value is ERROR:
        return None
    grid, reason = check_grid(value)
    if reason is not None or grid_cells(grid) >= MAX_CELLS:
        return None
    return grid


def mutation_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config["mutation"]`` over the paper's values: ``variants`` per program, ``max_attempts``, and
    ``provenance`` (variants as :class:`MutatedText`; off unless asked for)."""
    section = {**PAPER_CONFIG["mutation"], **dict((config or {}).get("mutation") or {})}
    return {"variants": int(section["variants"]), "max_attempts": int(section["max_attempts"]),
            "provenance": bool(section.get("provenance", False))}
