"""Bounded caches of what the policy derives from buffer entries: input texts of tasks and token ids.

Each meta-iteration the loop encodes every sampled experience's task (~0.5 ms each) and the policy
tokenises every pair (~0.4 ms each), up to 100,000 of them, although most were seen before: buffer
entries never change (a relabelled task has a key of its own), and the search tasks are the same every
iteration.  :class:`LRUCache` keeps the most recently used results up to a number of entries; keys are
the values themselves (a ``Task``, which hashes and compares by content; a text), never an id that
could be reused, so a hit is always the value the computation would return.

Two finer caches serve what the per-task ones miss (a new relabelled task mostly repeats grids the
buffer holds already: its search task's inputs, outputs other programs produced too): the text of each
grid (:func:`cached_grid_text`; the buffer interns grids, so a hit compares by identity) and, for the
DSL tokenizer, whose tokens never span a ``|`` or a newline, the token ids of each piece of text
between them (:func:`piecewise_token_ids`), so a text's ids are its pieces' cached ids joined.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

#: entries per cache by default: one paper-scale epoch (100,000 experiences) and the search tasks, twice
DEFAULT_ENTRIES = 200_000
#: texts per tokenizer call: the tokenizer's Python lists of ints (~36 bytes a token) for 100,000 texts of
#: ~600 tokens would need ~2 GB at once; chunks of this size are turned into compact arrays one by one
TOKENIZE_CHUNK = 2048


class LRUCache:
    """A mapping that keeps at most ``max_entries`` items, dropping the least recently used first
    (``max_entries`` 0: keeps nothing).  ``hits`` and ``misses`` count lookups."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES):
        self.max_entries = int(max_entries)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, default: Any = None) -> Any:
        try:
            value = self._items[key]
        except KeyError:
            self.misses += 1
            return default
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.max_entries <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._items), "hits": self.hits, "misses": self.misses}


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer dtype that holds every token id (uint16 for the DSL tokenizer)."""
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


def cached_token_ids(cache: LRUCache, texts: Sequence[str], max_length: int | None,
                     tokenize: Callable[[list[str], int | None], list[list[int]]],
                     dtype: np.dtype, chunk: int = TOKENIZE_CHUNK) -> list[np.ndarray]:
    """Token ids of ``texts`` (truncated to ``max_length`` by ``tokenize``), computing only the ones
    ``cache`` lacks, each distinct text once, in ``tokenize`` calls of at most ``chunk`` texts (so that
    the tokenizer's lists of one chunk at a time are alive); stored as compact arrays of ``dtype``."""
    out: list[np.ndarray | None] = [cache.get((max_length, text)) for text in texts]
    missing = [i for i, ids in enumerate(out) if ids is None]
    if missing:
        todo: dict[str, list[int]] = {}
        for i in missing:
            todo.setdefault(texts[i], []).append(i)
        distinct = list(todo)
        for start in range(0, len(distinct), max(1, chunk)):
            part = distinct[start:start + max(1, chunk)]
            for text, ids in zip(part, tokenize(part, max_length)):
                arr = np.asarray(ids, dtype=dtype)
                arr.setflags(write=False)
                cache.put((max_length, text), arr)
                for i in todo[text]:
                    out[i] = arr
    return out  # type: ignore[return-value]


def cached_grid_text(cache: LRUCache, encode: Callable[[Any], str]) -> Callable[[Any], str]:
    """``encode`` (a grid -> text function) through ``cache``, keyed by the grid (its value)."""

    def grid_text(grid: Any) -> str:
        text = cache.get(grid)
        if text is None:
            text = encode(grid)
            cache.put(grid, text)
        return text

    return grid_text


#: the pieces of text a DSL tokenizer's tokens never span: runs without ``|`` or newline, and those
_PIECE = re.compile(r"[^|\n]+|[|\n]")


def piecewise_token_ids(tokenizer: Any, pieces: LRUCache,
                        dtype: np.dtype) -> Callable[[list[str], int | None], list[np.ndarray]]:
    """``tokenize(texts, max_length)`` as :func:`codeit.policy.training.plain_token_ids` returns it for
    ``tokenizer`` (ids of the text, truncated to ``max_length - 1``, then the end-of-sequence id), built
    from the ids of the text's pieces (runs without ``|`` or newline, and those characters), each
    tokenised once and kept in ``pieces``.  Only for a tokenizer whose tokens never span a ``|`` or a
    newline and whose only special token is the final EOS (the DSL tokenizer; the tests compare it with
    the tokenizer on real tasks and programs)."""
    eos = np.asarray([tokenizer.eos_token_id], dtype=dtype)

    def tokenize(texts: list[str], max_length: int | None) -> list[np.ndarray]:
        split = [_PIECE.findall(text) for text in texts]
        known: dict[str, np.ndarray] = {}
        todo: list[str] = []
        for parts in split:
            for piece in parts:
                if piece not in known:
                    ids = pieces.get(piece)
                    known[piece] = ids
                    if ids is None:
                        todo.append(piece)
        for start in range(0, len(todo), TOKENIZE_CHUNK):
            part = todo[start:start + TOKENIZE_CHUNK]
            for piece, ids in zip(part, tokenizer(part, add_special_tokens=False,
                                                  return_attention_mask=False)["input_ids"]):
                arr = np.asarray(ids, dtype=dtype)
                pieces.put(piece, arr)
                known[piece] = arr
        out = []
        for parts in split:
            ids = np.concatenate([known[p] for p in parts]) if parts else eos[:0]
            if max_length is not None and len(ids) >= max_length:
                ids = ids[: max(0, max_length - 1)]
            out.append(np.concatenate((ids, eos)))
        return out

    return tokenize
