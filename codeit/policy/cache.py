"""Bounded caches of what the policy derives from buffer entries: input texts of tasks and token ids.

Each meta-iteration the loop encodes every sampled experience's task (~0.5 ms each) and the policy
tokenises every pair (~0.4 ms each), up to 100,000 of them, although most were seen before: buffer
entries never change (a relabelled task has a key of its own), and the search tasks are the same every
iteration.  :class:`LRUCache` keeps the most recently used results up to a number of entries; keys are
the values themselves (a ``Task``, which hashes and compares by content; a text), never an id that
could be reused, so a hit is always the value the computation would return.
"""

from __future__ import annotations

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
