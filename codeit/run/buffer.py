"""The prioritised replay buffer of CodeIt (docs/algorithm.md §4).

Entries (:class:`Entry`: a task, the program that solves it, where it came from and the numbers the
priority schemes read) live in two parts: ``initial`` (training programs, mutated and random
programs: every source except ``"policy"``) and ``policy`` (programs the policy sampled).  An entry
is keyed by ``(parent task key, program text)``, so the same program for the same parent task is
stored once (the first one added is kept).

Storage: entries in a Python list, their numeric attributes, part and priority in numpy arrays
grown by doubling, and a dict from key to position.  The grids of the entries' tasks are interned
(:class:`codeit.grids.GridTable`): one object per distinct grid and per distinct row, whichever was
added first, so a relabelled task's inputs are its search task's own grids and repeated or nearly
equal outputs cost little (a million entries fit in about 2 GB, not 5-6).  Sampling is vectorised
(Efraimidis-Spirakis keys ``log(u) / priority`` and ``argpartition``): ``k`` draws without
replacement with probability proportional to priority cost O(part size) numpy work, no Python loop
over entries.

Priorities come from a *priority function* mapping a batch's columns to priorities; in a run it is
:class:`codeit.run.priority.HookPriority`, the weighted mean of the ``codeit_priority`` schemes the
config selects plus a small epsilon; the buffer itself knows nothing of plugins.  When the buffer
holds more than ``capacity`` entries, the lower-priority half of
each part is dropped (ties: older entries go first), so the initial part keeps its share.

:meth:`ReplayBuffer.save` writes a folder: ``arrays-<n>.npz`` (all numeric columns), append-only
``entries-<n>.pkl`` chunks (the entries added since the previous save, as plain tuples), then
``manifest.json`` naming them, replaced atomically, so an interrupted save never damages the last
good one; :meth:`ReplayBuffer.load` restores an identical buffer, its grids interned again.  A chunk
is a sequence of pickles of at most :data:`CHUNK_BATCH` records each (pickle's memo, which stores a
shared grid once, holds one batch's temporary records at a time, not a million of them).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codeit.config import PAPER_CONFIG
from codeit.files import atomic_write
from codeit.grids import GridTable
from codeit.tasks import Example, Task

PARTS = ("initial", "policy")
POLICY_SOURCE = "policy"
#: column name -> numpy dtype of the per-entry numbers handed to priority schemes
COLUMNS: dict[str, Any] = {"accuracy": np.float32, "length": np.int32, "iteration": np.int32,
                           "similarity": np.float32}
DEFAULT_CAPACITY = PAPER_CONFIG["buffer"]["capacity"]
FORMAT_VERSION = 3
#: formats :meth:`ReplayBuffer.load` reads (2: one pickle per chunk, 3: a sequence of batches)
READ_FORMATS = (2, 3)
#: records per pickle in an entries chunk
CHUNK_BATCH = 20_000

PriorityFunction = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True, slots=True)
class Entry:
    """One replay-buffer experience: ``program`` solves ``task`` (by construction when relabelled).

    ``parent_key`` is the task the program was written for; ``source`` is the sampler that
    produced it (``"initial"``, ``"mutated"``, ``"random"``, ``"policy"``, ...); ``accuracy`` its
    demonstration accuracy on the parent task; ``length`` its length in tokens; ``iteration`` the
    meta-iteration it was added at; ``similarity`` in [0, 1] how close its outputs came to the
    parent's target outputs (for the ``distance`` priority).
    """

    task: Task
    program: str
    parent_key: str
    source: str
    accuracy: float = 1.0
    length: int = 0
    iteration: int = 0
    similarity: float = 1.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.parent_key, self.program)

    @property
    def part(self) -> str:
        return "policy" if self.source == POLICY_SOURCE else "initial"


def columns_of(entries: Sequence[Entry]) -> dict[str, np.ndarray]:
    """The priority columns of ``entries`` (see ``codeit_priority``)."""
    cols = {name: np.fromiter((getattr(e, name) for e in entries), dtype=dtype, count=len(entries))
            for name, dtype in COLUMNS.items()}
    cols["policy"] = np.fromiter((e.source == POLICY_SOURCE for e in entries), dtype=bool, count=len(entries))
    return cols


def uniform_priority(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Priority 1 for everything (a stand-in priority function for tools and tests)."""
    return np.ones(len(columns["accuracy"]), dtype=np.float64)


class ReplayBuffer:
    """The two-part prioritised replay buffer (module docstring)."""

    def __init__(self, priority: PriorityFunction = uniform_priority, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.priority = priority
        self.capacity = int(capacity)
        self._entries: list[Entry] = []
        self._index: dict[tuple[str, str], int] = {}
        self._size = 0
        self._seq = 0  # insertion counter, for tie-breaking on reduction
        self._arrays: dict[str, np.ndarray] = {}
        self._saved: dict[str, Any] | None = None  # what the last save/load left on disk, for incremental saves
        self.grids = GridTable()  # the entries' grids, interned
        self._allocate(1024)

    # -- storage -----------------------------------------------------------------------------------

    def _allocate(self, size: int) -> None:
        spec = {**COLUMNS, "priority": np.float64, "part": np.int8, "seq": np.int64}
        new = {name: np.zeros(size, dtype) for name, dtype in spec.items()}
        for name, array in self._arrays.items():
            new[name][: self._size] = array[: self._size]
        self._arrays = new

    def _view(self, name: str) -> np.ndarray:
        view = self._arrays[name][: self._size]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Entry):
            key = key.key
        return key in self._index

    def __getitem__(self, index: int) -> Entry:
        return self._entries[index]

    def get(self, parent_key: str, program: str) -> Entry | None:
        i = self._index.get((parent_key, program))
        return None if i is None else self._entries[i]

    @property
    def priorities(self) -> np.ndarray:
        """Read-only view of the entries' priorities (in iteration order)."""
        return self._view("priority")

    def columns(self) -> dict[str, np.ndarray]:
        """Read-only views of the priority columns of all entries."""
        cols = {name: self._view(name) for name in COLUMNS}
        cols["policy"] = self._view("part") == 1
        return cols

    def part_indices(self, part: str | None) -> np.ndarray:
        """Positions of the entries in ``part`` (``"initial"``, ``"policy"``, None: all)."""
        if part is None:
            return np.arange(self._size)
        return np.flatnonzero(self._view("part") == _part_code(part))

    def count(self, part: str | None = None) -> int:
        return len(self.part_indices(part)) if part is not None else self._size

    def entries(self, part: str | None = None) -> list[Entry]:
        if part is None:
            return list(self._entries)
        return [self._entries[i] for i in self.part_indices(part)]

    # -- adding ------------------------------------------------------------------------------------

    def add(self, entry: Entry) -> bool:
        """Add one entry; False if its key is already stored.  Prefer :meth:`add_many` for batches."""
        return self.add_many((entry,)) == 1

    def add_many(self, entries: Iterable[Entry]) -> int:
        """Add entries whose key is not yet stored (priorities computed for the batch at once, then
        the buffer reduced if over capacity); returns how many were added."""
        index = self._index
        new: list[Entry] = []
        start = self._size
        for entry in entries:
            key = (entry.parent_key, entry.program)
            if key not in index:
                index[key] = start + len(new)
                new.append(entry)
        if not new:
            return 0
        new = [self._interned(e) for e in new]
        n = len(new)
        try:
            cols = columns_of(new)
            priority = np.asarray(self.priority(cols), dtype=np.float64)
            if priority.shape != (n,) or not np.all(priority > 0) or not np.all(np.isfinite(priority)):
                raise ValueError("the priority function must return one finite priority > 0 per entry")
        except BaseException:
            for entry in new:
                del index[(entry.parent_key, entry.program)]
            raise
        end = start + n
        if end > len(self._arrays["priority"]):
            self._allocate(max(end, 2 * len(self._arrays["priority"])))
        arrays = self._arrays
        for name in COLUMNS:
            arrays[name][start:end] = cols[name]
        arrays["part"][start:end] = cols["policy"]
        arrays["priority"][start:end] = priority
        arrays["seq"][start:end] = np.arange(self._seq, self._seq + n)
        self._seq += n
        self._entries.extend(new)
        self._size = end
        if self._size > self.capacity:
            self.reduce()
        return n

    def _interned(self, entry: Entry) -> Entry:
        """``entry`` with its task's grids replaced by the table's shared objects (``entry`` itself when
        they are those already)."""
        task = entry.task
        train, test = self._examples(task.train), self._examples(task.test)
        if train is task.train and test is task.test:
            return entry
        return Entry(Task(task.key, train, test, task.program), entry.program, entry.parent_key, entry.source,
                     entry.accuracy, entry.length, entry.iteration, entry.similarity)

    def _examples(self, examples: tuple[Example, ...]) -> tuple[Example, ...]:
        grid = self.grids.grid
        out = []
        changed = False
        for ex in examples:
            i, o = grid(ex.input), grid(ex.output)
            if i is ex.input and o is ex.output:
                out.append(ex)
            else:
                out.append(Example(i, o))
                changed = True
        return tuple(out) if changed else examples

    def _reintern(self) -> None:
        """Rebuild the grid table from the entries kept (they hold its objects already), so that grids
        of dropped entries can be freed."""
        self.grids.clear()
        for entry in self._entries:
            self._examples(entry.task.train)
            self._examples(entry.task.test)

    def reprioritise(self, priority: PriorityFunction | None = None) -> None:
        """Recompute every priority (with ``priority``, which then becomes the buffer's function)."""
        if priority is not None:
            self.priority = priority
        if self._size:
            values = np.asarray(self.priority(self.columns()), dtype=np.float64)
            if values.shape != (self._size,) or not np.all(values > 0):
                raise ValueError("the priority function must return one priority > 0 per entry")
            self._arrays["priority"][: self._size] = values

    def reduce(self) -> None:
        """Drop the lower-priority half of each part (ties: older first)."""
        keep_parts = []
        priority, seq = self._view("priority"), self._view("seq")
        for part in PARTS:
            idx = self.part_indices(part)
            if len(idx) < 2:
                keep_parts.append(idx)
                continue
            order = np.lexsort((-seq[idx], -priority[idx]))  # best first
            keep_parts.append(idx[order[: len(idx) - len(idx) // 2]])
        self._compact(np.sort(np.concatenate(keep_parts)))

    def _compact(self, keep: np.ndarray) -> None:
        entries = self._entries
        self._entries = [entries[i] for i in keep]
        for array in self._arrays.values():
            array[: len(keep)] = array[keep]
        self._size = len(keep)
        self._index = {(e.parent_key, e.program): i for i, e in enumerate(self._entries)}
        self._reintern()

    def clear(self) -> None:
        self._entries, self._index, self._size = [], {}, 0
        self.grids.clear()

    # -- sampling ----------------------------------------------------------------------------------

    def sample_indices(self, n: int, *, part: str | None = None,
                       rng: np.random.Generator | None = None) -> np.ndarray:
        """Positions of ``n`` entries of ``part`` drawn without replacement, each draw with probability
        proportional to priority (all of them, in a random priority-weighted order, if fewer)."""
        rng = rng if rng is not None else np.random.default_rng()
        idx = self.part_indices(part)
        if n <= 0 or len(idx) == 0:
            return np.zeros(0, dtype=np.int64)
        # Efraimidis-Spirakis: the n largest log(u)/p are a weighted sample without replacement.
        u = rng.random(len(idx))
        np.subtract(1.0, u, out=u)  # (0, 1]
        keys = np.log(u, out=u)
        keys /= self._arrays["priority"][idx]
        if n < len(idx):
            top = np.argpartition(keys, len(idx) - n)[len(idx) - n:]
        else:
            top = np.arange(len(idx))
        top = top[np.argsort(-keys[top], kind="stable")]
        return idx[top]

    def sample(self, n: int, *, part: str | None = None, rng: np.random.Generator | None = None) -> list[Entry]:
        """``n`` entries of ``part`` (None: the whole buffer) by priority, without replacement."""
        entries = self._entries
        return [entries[i] for i in self.sample_indices(n, part=part, rng=rng)]

    def sample_parts(self, sizes: Mapping[str, int], rng: np.random.Generator | None = None) -> list[Entry]:
        """Sample each part separately, e.g. ``{"policy": 90_000, "initial": 10_000}`` (paper)."""
        rng = rng if rng is not None else np.random.default_rng()
        out: list[Entry] = []
        for part, n in sizes.items():
            out.extend(self.sample(n, part=part, rng=rng))
        return out

    # -- persistence -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the buffer to the folder ``path`` (created if needed); safe against interruption.

        The arrays are written whole; entries go to append-only chunk files, so saving again to the
        folder this buffer was saved to (or loaded from) writes only the entries added since.  When
        more than half of the stored records belong to dropped entries, the chunks are rewritten.
        """
        return self.saver(path)()

    def saver(self, path: str | os.PathLike) -> Callable[[], Path]:
        """:meth:`save` in two steps: this call captures the buffer as it is now (a copy of the arrays
        and of the list of entries, which are immutable: milliseconds even at a million entries); the
        function it returns writes that to ``path`` and may run in another thread while the buffer
        changes.  Call the functions of one buffer in order, one at a time (each reads what the
        previous one left on disk)."""
        size, next_seq = self._size, self._seq
        arrays = {name: array[:size].copy() for name, array in self._arrays.items()}
        entries = self._entries[:size]
        capacity = self.capacity
        folder = Path(path)

        def write() -> Path:
            self._saved = _write_folder(folder, arrays, entries, self._saved, next_seq, capacity)
            return folder

        return write

    @classmethod
    def load(cls, path: str | os.PathLike, priority: PriorityFunction = uniform_priority,
             capacity: int | None = None) -> ReplayBuffer:
        """A buffer saved by :meth:`save`, with its stored priorities (call :meth:`reprioritise` to
        recompute them with ``priority``).  Only load folders you trust."""
        folder = Path(path)
        if not (folder / "manifest.json").exists():
            raise FileNotFoundError(f"{folder}: no saved replay buffer (manifest.json missing)")
        manifest = _read_manifest(folder)
        buffer = cls(priority, capacity=capacity if capacity is not None else manifest["capacity"])
        with np.load(folder / manifest["arrays"]) as data:
            arrays = {name: data[name] for name in data.files}
        size = int(manifest["size"])
        if any(len(a) != size for a in arrays.values()):
            raise ValueError(f"{folder}: saved arrays disagree in length")
        stored_seq: list[int] = []
        stored: list[Entry] = []
        for name in manifest["chunks"]:
            for seqs, records in _read_chunk(folder / name):
                stored_seq.extend(seqs)
                stored.extend(buffer._interned(_entry_from_record(r)) for r in records)
        all_seq = np.asarray(stored_seq, dtype=np.int64)
        pos = np.searchsorted(all_seq, arrays["seq"])
        if len(all_seq) != len(stored) or (size and (pos.max() >= len(all_seq)
                                                      or not (all_seq[pos] == arrays["seq"]).all())):
            raise ValueError(f"{folder}: saved entries and arrays disagree")
        buffer._allocate(max(size, 1024))
        for name, array in arrays.items():
            buffer._arrays[name][:size] = array
        buffer._entries = [stored[i] for i in pos.tolist()]
        buffer._size = size
        buffer._seq = int(manifest["seq"])
        buffer._index = {(e.parent_key, e.program): i for i, e in enumerate(buffer._entries)}
        if len(buffer._index) != size:
            raise ValueError(f"{folder}: saved buffer holds duplicate keys")
        if len(stored) != size:  # records of dropped entries: let their grids go
            del stored
            buffer._reintern()
        buffer._saved = {"folder": str(folder.resolve()), "generation": manifest["generation"],
                         "records": len(stored), "saved_seq": buffer._seq}
        return buffer


def _write_folder(folder: Path, arrays: Mapping[str, np.ndarray], entries: Sequence[Entry],
                  saved: Mapping[str, Any] | None, next_seq: int, capacity: int) -> dict[str, Any]:
    """Write a captured buffer (:meth:`ReplayBuffer.saver`) to ``folder``; returns what a buffer needs to
    know to save there again incrementally."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    old = _read_manifest(folder) if manifest_path.exists() else None
    generation = int(old["generation"]) + 1 if old else 0
    seq = arrays["seq"]
    size = len(entries)
    chunks, records, first_new = [], 0, 0
    if (saved is not None and old is not None and saved["folder"] == str(folder.resolve())
            and saved["generation"] == old["generation"]):
        live = int(np.searchsorted(seq, saved["saved_seq"]))  # positions are in insertion (seq) order
        if saved["records"] - live <= live:  # at most half the stored records are dropped entries
            chunks, records, first_new = list(old["chunks"]), int(saved["records"]), live
    if first_new < size:
        chunk_name = f"entries-{generation}.pkl"
        atomic_write(folder / chunk_name, lambda f: _write_chunk(f, seq[first_new:], entries[first_new:]))
        chunks.append(chunk_name)
        records += size - first_new
    arrays_name = f"arrays-{generation}.npz"
    atomic_write(folder / arrays_name, lambda f: np.savez(f, **arrays))
    manifest = {"format": FORMAT_VERSION, "generation": generation, "arrays": arrays_name, "chunks": chunks,
                "records": records, "size": size, "seq": next_seq, "capacity": capacity}
    atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    keep = {arrays_name, "manifest.json", *chunks}
    for file in folder.iterdir():  # earlier generations, and temp files of interrupted saves
        if file.name not in keep and file.name.startswith(("arrays-", "entries-", ".tmp-")):
            file.unlink(missing_ok=True)
    return {"folder": str(folder.resolve()), "generation": generation, "records": records, "saved_seq": next_seq}


def _write_chunk(f: Any, seq: np.ndarray, entries: Sequence[Entry], batch: int | None = None) -> None:
    """Pickle ``(seqs, records)`` batches of at most ``batch`` entries one after the other to ``f``; each
    with a fresh memo, so a grid shared within a batch is stored once and the temporary records of one
    batch at a time are held."""
    batch = max(1, batch or CHUNK_BATCH)
    for start in range(0, len(entries), batch):
        part = (seq[start:start + batch].tolist(), [_entry_record(e) for e in entries[start:start + batch]])
        pickle.dump(part, f, protocol=pickle.HIGHEST_PROTOCOL)


def _read_chunk(path: Path) -> Iterator[tuple[list[int], list[tuple]]]:
    """The ``(seqs, records)`` batches of a chunk (format 2 wrote one, format 3 a sequence)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while f.tell() < size:
            yield _SafeUnpickler(f).load()


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (ValueError, OSError) as err:
        raise ValueError(f"{folder}: unreadable replay-buffer manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in READ_FORMATS:
        raise ValueError(f"{folder}: unsupported replay-buffer format "
                         f"{manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
    return manifest


def _part_code(part: str) -> int:
    try:
        return PARTS.index(part)
    except ValueError:
        raise ValueError(f"unknown buffer part {part!r}; parts are {PARTS}") from None


def _examples_record(examples: tuple[Example, ...]) -> tuple:
    return tuple((e.input, e.output) for e in examples)


def _entry_record(e: Entry) -> tuple:
    # plain builtins only: grids shared within a batch are stored once by pickle's memo (and interned
    # again on loading), and loading needs no classes
    t = e.task
    return (t.key, _examples_record(t.train), _examples_record(t.test), t.program, e.program, e.parent_key,
            e.source, float(e.accuracy), int(e.length), int(e.iteration), float(e.similarity))


def _entry_from_record(r: tuple) -> Entry:
    key, train, test, task_program, program, parent, source, acc, length, iteration, sim = r
    task = Task(key, tuple(Example(i, o) for i, o in train), tuple(Example(i, o) for i, o in test), task_program)
    return Entry(task, program, parent, source, acc, length, iteration, sim)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles builtin values only (the entry records): refuses every class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"replay buffer file refers to {module}.{name}; only plain data is allowed")
