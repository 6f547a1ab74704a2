"""The sparse grid text encoding of docs/algorithm.md §4 and its exact inverse; task -> model input text.

One grid::

    "{h}x{w} background={b} {c}={i},{j} {i},{j} ... {c}={i},{j} ..."

``b`` is the most common colour, **ties going to the smallest colour**; then, for each other colour
``c`` present, **in increasing order**, the cells of that colour **in row-major order** (row ``i``
top to bottom, column ``j`` left to right), the first cell prefixed by ``c=``.  A grid of one colour
is just ``"{h}x{w} background={b}"``.  Tokens are separated by single spaces, with no trailing space,
so every grid has exactly one encoding and ``decode_grid(encode_grid(g)) == g``.

Several grids are joined by ``|`` (no spaces).  A task's model input is the demonstration inputs,
a newline, then the demonstration outputs (:func:`encode_task`), each side capped at
``max_tokens`` tokens.  Tokens are counted by :func:`estimate_tokens` (runs of letters, runs of
digits, and single other characters) unless a tokenizer is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from codeit.tasks import Grid, Task

GRID_SEPARATOR = "|"
SIDE_SEPARATOR = "\n"
MAX_SIDE_TOKENS = 512

_TOKEN = re.compile(r"[A-Za-z_]+|\d+|\S")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token count: runs of letters/underscores, runs of digits, other characters.

    ``"3x3 background=0 7=0,1"`` counts 11; ``"x1 = vmirror(I)"`` counts 7.
    """
    return len(_TOKEN.findall(text))


def background(grid: Grid) -> int:
    """The most common colour of ``grid``; ties go to the smallest colour."""
    counts = [0] * 10
    for row in grid:
        for cell in row:
            counts[cell] += 1
    best = max(counts)
    return counts.index(best)


def encode_grid(grid: Grid) -> str:
    """The sparse text of one grid (module docstring); ``grid`` is rows of ints 0-9."""
    counts = [0] * 10
    cells: list[list[str]] = [[] for _ in range(10)]
    for i, row in enumerate(grid):
        for j, c in enumerate(row):
            counts[c] += 1
            cells[c].append(f"{i},{j}")
    bg = counts.index(max(counts))
    parts = [f"{len(grid)}x{len(grid[0])} background={bg}"]
    for c in range(10):
        if c != bg and cells[c]:
            parts.append(f"{c}=" + " ".join(cells[c]))
    return " ".join(parts)


def decode_grid(text: str) -> Grid:
    """The exact inverse of :func:`encode_grid`; ``ValueError`` on text it did not produce.

    Strict: the canonical order and background must hold, so that decoding is a bijection on the
    encoder's outputs and a malformed (e.g. model-written) string is rejected, not guessed at.
    """
    tokens = text.split(" ")
    try:
        h_text, _, w_text = tokens[0].partition("x")
        h, w = int(h_text), int(w_text)
        if not tokens[1].startswith("background="):
            raise ValueError
        bg = int(tokens[1][len("background="):])
    except (ValueError, IndexError):
        raise ValueError(f"grid text must start with '<h>x<w> background=<c>': {text[:40]!r}") from None
    if not (h >= 1 and w >= 1 and 0 <= bg <= 9) or tokens[0] != f"{h}x{w}" or tokens[1] != f"background={bg}":
        raise ValueError(f"bad grid header {' '.join(tokens[:2])!r}")
    grid = [[bg] * w for _ in range(h)]
    counts = [0] * 10
    colour = None
    last: tuple[int, int] | None = None
    for token in tokens[2:]:
        head, eq, rest = token.partition("=")
        if eq:
            if not (len(head) == 1 and head.isdigit()):
                raise ValueError(f"bad colour in {token!r}")
            new = int(head)
            if new == bg or (colour is not None and new <= colour):
                raise ValueError(f"colour {new} out of order or equal to the background in {text[:60]!r}")
            colour, last, token = new, None, rest
        elif colour is None:
            raise ValueError(f"cell {token!r} before any colour")
        i_text, comma, j_text = token.partition(",")
        if not (comma and i_text.isdigit() and j_text.isdigit()):
            raise ValueError(f"bad cell {token!r}")
        i, j = int(i_text), int(j_text)
        if f"{i},{j}" != token or not (i < h and j < w) or (last is not None and (i, j) <= last):
            raise ValueError(f"cell {token!r} out of range or out of order")
        if grid[i][j] != bg:
            raise ValueError(f"cell {token!r} given two colours")
        grid[i][j] = colour
        counts[colour] += 1
        last = (i, j)
    counts[bg] = h * w - sum(counts)
    if max(counts) != counts[bg] or counts.index(counts[bg]) != bg:
        raise ValueError(f"background {bg} is not the most common colour (smallest on ties)")
    return tuple(tuple(row) for row in grid)


def encode_grids(grids: Iterable[Grid]) -> str:
    """Grids encoded and joined by ``|``."""
    return GRID_SEPARATOR.join(encode_grid(g) for g in grids)


def decode_grids(text: str) -> list[Grid]:
    """The inverse of :func:`encode_grids` (empty text: no grids)."""
    return [decode_grid(part) for part in text.split(GRID_SEPARATOR)] if text else []


def token_counter(tokenizer: Any = None) -> Callable[[str], int]:
    """A text -> token count function.

    ``tokenizer`` may be None (:func:`estimate_tokens`), a callable returning a count or a token
    list, or an object with ``encode(text)`` (e.g. a Hugging Face tokenizer; special tokens are not
    counted where ``add_special_tokens`` is accepted).
    """
    if tokenizer is None:
        return estimate_tokens
    if hasattr(tokenizer, "encode"):
        def count(text: str) -> int:
            try:
                return len(tokenizer.encode(text, add_special_tokens=False))
            except TypeError:
                return len(tokenizer.encode(text))
        return count
    if callable(tokenizer):
        def count_call(text: str) -> int:
            result = tokenizer(text)
            return result if isinstance(result, int) else len(result)
        return count_call
    raise TypeError(f"tokenizer must be None, callable or have .encode(), got {type(tokenizer).__name__}")


def truncate_tokens(text: str, max_tokens: int, count: Callable[[str], int] = estimate_tokens) -> str:
    """The longest prefix of ``text`` ending at a space or ``|`` boundary with at most ``max_tokens``."""
    if count(text) <= max_tokens:
        return text
    cuts = [m.start() for m in re.finditer(r"[ |]", text)]
    lo, hi = 0, len(cuts) - 1  # binary search for the last cut whose prefix fits
    best = ""
    while lo <= hi:
        mid = (lo + hi) // 2
        prefix = text[: cuts[mid]]
        if count(prefix) <= max_tokens:
            best, lo = prefix, mid + 1
        else:
            hi = mid - 1
    return best


def encode_examples(inputs: Sequence[Grid], outputs: Sequence[Grid], *, max_tokens: int = MAX_SIDE_TOKENS,
                    tokenizer: Any = None, grid_text: Callable[[Grid], str] = encode_grid) -> str:
    """``inputs`` and ``outputs`` as model input text: ``"<inputs>\\n<outputs>"``.

    Each side is capped at ``max_tokens``: the largest number of leading examples whose inputs and
    outputs both fit is kept; if not even one example fits, the first example's sides are cut at
    the last grid token boundary that fits (the cut grids then do not decode).  ``grid_text`` is
    :func:`encode_grid` or a function returning the same text (e.g. from a cache).
    """
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise ValueError("no examples to encode")
    count = token_counter(tokenizer)
    in_texts = [grid_text(g) for g in inputs]
    out_texts = [grid_text(g) for g in outputs]
    n = len(in_texts)
    while n > 1:
        left, right = GRID_SEPARATOR.join(in_texts[:n]), GRID_SEPARATOR.join(out_texts[:n])
        if count(left) <= max_tokens and count(right) <= max_tokens:
            return left + SIDE_SEPARATOR + right
        n -= 1
    left = truncate_tokens(in_texts[0], max_tokens, count)
    right = truncate_tokens(out_texts[0], max_tokens, count)
    return left + SIDE_SEPARATOR + right


def encode_task(task: Task, *, n_examples: int | None = None, max_tokens: int = MAX_SIDE_TOKENS,
                tokenizer: Any = None, grid_text: Callable[[Grid], str] = encode_grid) -> str:
    """The model input for ``task``: its first ``n_examples`` demonstrations (all if None, at most
    as many as fit, see :func:`encode_examples`)."""
    examples = task.train if n_examples is None else task.train[:n_examples]
    return encode_examples([e.input for e in examples], [e.output for e in examples],
                           max_tokens=max_tokens, tokenizer=tokenizer, grid_text=grid_text)


def task_text(task: Task, config: Mapping[str, Any] | None = None, *, tokenizer: Any = None) -> str:
    """:func:`encode_task` with the run config's ``policy`` settings: ``n_examples`` (ablation A5:
    one demonstration) and ``max_side_tokens`` -- what a model's ``encode_task`` should return
    (``tokenizer``: count tokens with it instead of the estimate)."""
    policy = (config or {}).get("policy") or {}
    n_examples = policy.get("n_examples")
    return encode_task(task, n_examples=None if n_examples is None else int(n_examples),
                       max_tokens=int(policy.get("max_side_tokens") or MAX_SIDE_TOKENS), tokenizer=tokenizer)


def decode_task_text(text: str) -> tuple[list[Grid], list[Grid]]:
    """``(inputs, outputs)`` from :func:`encode_examples` text (when nothing was cut)."""
    left, sep, right = text.partition(SIDE_SEPARATOR)
    if not sep:
        raise ValueError("task text has no newline between inputs and outputs")
    return decode_grids(left), decode_grids(right)
