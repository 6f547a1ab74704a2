"""DSL programs as validated, immutable values: parse, check, normalise and render program text.

A program is straight-line code, one call per line (dsl-spec §4.1): ``xN = f(a, b)``, where the
callee is a primitive or an earlier variable holding a function, every argument is an earlier
variable, a primitive, a constant or ``I``, and the last line assigns ``O``.  Two text forms exist:
the *function* form of the published programs (``def solve_<key>(I):`` … ``return O``) and the
*bare-lines* form the model reads and writes.  :func:`parse` accepts both.

The checks follow the reference syntax checker (§4.2: exact ``" = "`` and ``", "`` spacing, one call
per line, single assignment, no repeated call text, no literals) with two deliberate tightenings:
arguments and callees must be assigned on an *earlier* line (the reference lets a line name its own
variable and fails only at run time), and variable names may not shadow a primitive, a constant or
``I``.  Parsing is on the hot path (every sampled or mutated program), so it uses string splitting
only — no ``ast``, no ``eval``.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from codeit.dsl import CONSTANTS, PRIMITIVES

__all__ = ["INPUT", "OUTPUT", "Line", "Program", "ProgramError", "normalised_text", "parse", "parse_function", "parse_lines"]

#: Name of the input grid and of the variable holding the result.
INPUT = "I"
OUTPUT = "O"

_INDENT = "    "
_RETURN = "return O"
_new_tuple = tuple.__new__
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


class ProgramError(ValueError):
    """Program text that is not a valid DSL program; the message names the line and the reason."""


class Line(NamedTuple):
    """One step ``target = callee(arg, ...)``; all fields are names (no literals exist)."""

    target: str
    callee: str
    args: tuple[str, ...]

    @property
    def call(self) -> str:
        """The call text ``callee(a, b)``, as the duplicate-computation rule compares it."""
        return f"{self.callee}({', '.join(self.args)})"

    def __str__(self) -> str:
        return f"{self.target} = {self.callee}({', '.join(self.args)})"


@dataclass(frozen=True)
class Program:
    """A validated program: its lines and, for the function form, the function's name.

    Build one with :func:`parse` (or :meth:`from_lines`); constructing it directly also validates.
    Equality and hashing look at the lines only, not at the function name.
    """

    lines: tuple[Line, ...]
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        lines = tuple(Line(t, c, tuple(a)) for t, c, a in self.lines)
        object.__setattr__(self, "lines", lines)
        if not lines:
            raise ProgramError("line 1: empty program")
        if _parse([str(line) for line in lines], 1) != lines:
            raise ProgramError(f"malformed lines {lines!r}")
        if self.name is not None:
            _check_function_name(self.name)

    @classmethod
    def from_lines(cls, lines: Iterable[Line | tuple[str, str, Iterable[str]]], name: str | None = None
                   ) -> Program:
        """A program from ``(target, callee, args)`` triples, validated like parsed text."""
        return cls(tuple(lines), name)

    @classmethod
    def _trusted(cls, lines: tuple[Line, ...], name: str | None) -> Program:
        """Skip validation: ``lines`` were produced by the checker or derived from a valid program."""
        program = object.__new__(cls)
        object.__setattr__(program, "lines", lines)
        object.__setattr__(program, "name", name)
        return program

    def __len__(self) -> int:
        return len(self.lines)

    def __str__(self) -> str:
        return self.text

    @cached_property
    def text(self) -> str:
        """The bare-lines form (no trailing newline); also the executor's cache key."""
        return "\n".join(map(str, self.lines))

    def to_lines(self) -> str:
        """Render the bare-lines form: one ``x = f(a, b)`` line per step, joined by newlines."""
        return self.text

    def to_function(self, name: str | None = None) -> str:
        """Render the function form ``def name(I):`` … ``return O`` with a trailing newline.

        ``name`` defaults to the name parsed from a function, else ``solve``.
        """
        name = name or self.name or "solve"
        _check_function_name(name)
        body = "".join(f"{_INDENT}{line}\n" for line in self.lines)
        return f"def {name}({INPUT}):\n{body}{_INDENT}{_RETURN}\n"

    def normalise(self) -> Program:
        """Drop the lines ``O`` does not depend on and renumber the variables ``x1``..``xN`` in order."""
        needed = {OUTPUT}
        kept = []
        for line in reversed(self.lines):
            if line.target in needed:
                kept.append(line)
                needed.add(line.callee)
                needed.update(line.args)
        kept.reverse()
        rename = {line.target: f"x{i}" for i, line in enumerate(kept[:-1], 1)}
        get = rename.get
        lines = tuple(Line(get(t, t), get(c, c), tuple(get(a, a) for a in args)) for t, c, args in kept)
        return Program._trusted(lines, self.name)


def parse(text: str) -> Program:
    """Parse either text form: the function form if the text starts with ``def``, else bare lines."""
    if text.startswith("def "):
        return parse_function(text)
    return parse_lines(text)


def normalised_text(text: str | None) -> str | None:
    """``text`` without the lines its output does not depend on, variables renumbered
    (:meth:`Program.normalise`); None if it is empty or does not parse."""
    try:
        return parse(text).normalise().text if text else None
    except ProgramError:
        return None


def parse_lines(text: str) -> Program:
    """Parse the bare-lines form; trailing newlines are ignored, blank lines are errors (as in §4.2)."""
    return Program._trusted(_parse(text.rstrip("\n").split("\n"), 1), None)


def parse_function(text: str) -> Program:
    """Parse the function form: ``def <name>(I):``, indented lines, ``return O`` (then only newlines)."""
    raw = text.rstrip("\n").split("\n")
    header = raw[0].rstrip()
    name, sep, rest = header[4:].partition(f"({INPUT}):") if header.startswith("def ") else ("", "", "")
    if not sep or rest or not name.isidentifier():
        raise ProgramError(f"line 1: expected 'def <name>({INPUT}):' in {header!r}")
    if len(raw) < 2 or raw[-1].strip() != _RETURN:
        raise ProgramError(f"line {len(raw)}: expected '{_RETURN}' as the last line")
    if len(raw) == 2:
        raise ProgramError(f"line 2: the function has no steps before '{_RETURN}'")
    return Program._trusted(_parse(raw[1:-1], 2), name)


def _parse(raw: list[str], first: int) -> tuple[Line, ...]:
    """Split and check the step lines ``raw``, numbered from ``first``; one pass, no ``ast``."""
    primitives, names, reserved = _vocabulary()
    assigned: dict[str, int] = {}
    calls: dict[str, int] = {}
    lines = []
    last = first + len(raw) - 1
    for number, text in enumerate(raw, first):
        text = text.strip()
        parts = text.split(" = ")
        if len(parts) != 2:
            reason = ("empty line" if not text else "more than one ' = '" if " = " in text
                      else "expected 'variable = call' with spaces around '='")
            raise _error(number, reason, text)
        target, call = parts
        callee, paren, rest = call.partition("(")
        if not paren or not rest.endswith(")") or "(" in rest or ")" in rest[:-1]:
            raise _error(number, "expected exactly one call 'f(a, b)' after ' = '", text)
        argtext = rest[:-1]
        args = tuple(argtext.split(", ")) if "," in argtext else (argtext,)
        if target in assigned or target in reserved or not target.isidentifier():
            raise _error(number, _bad_target(target, assigned), text)
        if (target == OUTPUT) != (number == last):
            reason = (f"{OUTPUT!r} may only be assigned on the last line" if target == OUTPUT
                      else f"the last line must assign {OUTPUT!r}, not {target!r}")
            raise _error(number, reason, text)
        if callee not in assigned and callee not in primitives:
            raise _error(number, _unknown(callee, target, "callee"), text)
        for arg in args:
            if arg not in assigned and arg not in names:
                raise _error(number, _unknown(arg, target, "argument"), text)
        if call in calls:
            raise _error(number, f"repeats the call {call!r} of line {calls[call]}", text)
        calls[call] = number
        assigned[target] = number
        lines.append(_new_tuple(Line, (target, callee, args)))  # Line(...) minus a Python-level call
    return tuple(lines)


_vocabulary_cache: list = [-1, -1, None]


def _vocabulary() -> tuple[dict, frozenset[str], frozenset[str]]:
    """(primitives, names usable as arguments, names no variable may take), rebuilt if the registry grew."""
    key = (len(PRIMITIVES), len(CONSTANTS))
    if _vocabulary_cache[:2] != list(key):
        names = frozenset(PRIMITIVES) | frozenset(CONSTANTS) | {INPUT}
        _vocabulary_cache[:] = [*key, (PRIMITIVES, names, names | _KEYWORDS)]
    return _vocabulary_cache[2]


def _bad_target(target: str, assigned: dict[str, int]) -> str:
    """The reason ``target`` cannot be assigned."""
    if target in assigned:
        return f"variable {target!r} is already assigned on line {assigned[target]}"
    if target == INPUT:
        return f"variable {target!r} shadows the input"
    if target in PRIMITIVES:
        return f"variable {target!r} shadows a primitive"
    if target in CONSTANTS:
        return f"variable {target!r} shadows a constant"
    return f"invalid variable name {target!r}"


def _unknown(name: str, target: str, role: str) -> str:
    """The reason an argument or callee ``name`` is not acceptable."""
    if not name:
        return f"empty {role}"
    if name == target:
        return f"{name!r} is used on the line that assigns it"
    if role == "callee" and (name in CONSTANTS or name == INPUT):
        return f"{name!r} is not a function"
    if "," in name or " " in name:
        return f"arguments must be separated by ', ' (got {name!r})"
    if name[0].isdigit() or name[0] in "-+'\"":
        return f"literal {name!r} (only names may be arguments)"
    return f"unknown name {name!r}"


def _error(number: int, reason: str, text: str) -> ProgramError:
    return ProgramError(f"line {number}: {reason} in {text!r}")


def _check_function_name(name: str) -> None:
    if not name.isidentifier() or name in _KEYWORDS:
        raise ProgramError(f"invalid function name {name!r}")
