"""What ``codeit compare`` knows of a recorded run, and how it is read from a file record.

A :class:`RunRecord` is the same whichever observer wrote it (the file record ``runs/<id>/`` or
MongoDB, :mod:`codeit.compare.mongo`), so that grouping, statistics and output never ask where a
run came from.  Reading never fails on one bad run: a folder that is not (yet) a usable record is
left out with a one-line note, because a comparison is often made while other runs still start,
crash or get copied around.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RUN_FOLDER", "RecordError", "RunRecord", "flat_updates", "metric_series", "read_file_runs",
           "read_run_folder", "resume_links"]

#: the folder names of Sacred's file record: the run id, or ``<id>-<k>`` when the id's folder was taken
RUN_FOLDER = re.compile(r"(?P<number>\d+)(?:-\d+)?")


class RecordError(ValueError):
    """A run folder or document that cannot be compared (missing or malformed files, no metrics)."""


@dataclass(frozen=True)
class RunRecord:
    """One recorded run: its id and status, how it was configured, and every metric it logged.

    ``metrics`` maps a metric name to its ``(step, value)`` points sorted by step (Sacred's step:
    the 0-based meta-iteration); ``config_updates`` are the values given on the command line
    (``with ... policy.lr=1e-3``) as dotted keys; ``source`` says where the record was read.
    """

    id: str
    status: str
    named_configs: tuple[str, ...]
    config: Mapping[str, Any]
    metrics: Mapping[str, tuple[tuple[int, float], ...]]
    config_updates: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    resumed_by: str | None = None    # the id of the run that resumed this one (status INTERRUPTED)
    resumed_from: str | None = None  # the id of the run this one resumed (``resume_from``)

    @property
    def number(self) -> int | None:
        """The run's numeric id (``7`` for ``7`` and for a folder ``7-1``), if it has one."""
        m = RUN_FOLDER.fullmatch(self.id)
        return int(m["number"]) if m else None

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def iterations(self) -> int:
        """How many steps (meta-iterations) the run recorded: distinct steps over all its metrics."""
        return len({step for points in self.metrics.values() for step, _ in points})

    def final(self, metric: str) -> float | None:
        """The metric's value at the run's last step for it, or None when the run never logged it."""
        points = self.metrics.get(metric)
        return points[-1][1] if points else None

    def config_value(self, key: str) -> Any:
        """The config value at a dotted key (``policy.model``); ``KeyError`` when absent."""
        value: Any = self.config
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise KeyError(key)
            value = value[part]
        return value


def flat_updates(updates: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Sacred's nested ``meta.config_updates`` as dotted keys: ``{"policy": {"lr": 1}}`` -> ``policy.lr``."""
    out: dict[str, Any] = {}
    for key, value in (updates or {}).items():
        if isinstance(value, Mapping) and value:
            out.update(flat_updates(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def metric_series(steps: Iterable[Any], values: Iterable[Any]) -> tuple[tuple[int, float], ...]:
    """Sacred's parallel ``steps``/``values`` lists as sorted points; a step logged twice keeps its
    last value, and points that are not numbers are dropped."""
    points: dict[int, float] = {}
    for step, value in zip(steps, values, strict=False):
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if isinstance(step, int | float) and not math.isnan(number):
            points[int(step)] = number
    return tuple(sorted(points.items()))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"no {path.name}") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RecordError(f"{path.name} is not readable JSON ({type(err).__name__})") from None


def read_run_folder(folder: str | os.PathLike) -> RunRecord:
    """The run recorded in ``folder`` (``config.json``, ``run.json``, ``metrics.json``).

    Raises :class:`RecordError` when a file is missing or malformed or the run logged no metric
    yet (a run that is starting, or failed before its first meta-iteration).
    """
    folder = Path(folder)
    run = _json(folder / "run.json")
    config = _json(folder / "config.json")
    if not isinstance(run, dict) or not isinstance(config, dict):
        raise RecordError("run.json or config.json is not a JSON object")
    try:
        logged = _json(folder / "metrics.json")
    except RecordError as err:
        raise RecordError(f"{err}: no metrics yet (status {run.get('status', '?')})") from None
    if not isinstance(logged, dict):
        raise RecordError("metrics.json is not a JSON object")
    metrics = {name: metric_series(m.get("steps", ()), m.get("values", ()))
               for name, m in logged.items() if isinstance(m, dict)}
    metrics = {name: points for name, points in metrics.items() if points}
    if not metrics:
        raise RecordError(f"no metrics yet (status {run.get('status', '?')})")
    meta = run.get("meta") or {}
    try:
        info = _json(folder / "info.json")
    except RecordError:
        info = {}  # Sacred writes info.json only once there is something in it
    return RunRecord(id=folder.name, status=str(run.get("status", "UNKNOWN")),
                     named_configs=tuple(str(n) for n in meta.get("named_configs") or ()),
                     config=config, metrics=metrics, config_updates=flat_updates(meta.get("config_updates")),
                     source=str(folder), **resume_links(run, info))


def resume_links(run: Mapping[str, Any], info: Any) -> dict[str, str | None]:
    """``resumed_by`` (from the run entry, set when a later run resumed it) and ``resumed_from``
    (from the run's info, set when it resumed an earlier run), as run ids."""
    by = (run.get("resumed_by") or {}).get("run_id")
    start = ((info if isinstance(info, Mapping) else {}).get("resumed_from") or {}).get("run_id")
    return {"resumed_by": None if by is None else str(by), "resumed_from": None if start is None else str(start)}


def read_file_runs(root: str | os.PathLike, keep_id: Callable[[int], bool] | None = None
                   ) -> tuple[list[RunRecord], list[str]]:
    """Every run under the file-record root ``root`` (folders named by run id), or ``root`` itself
    when it is one run's folder; ``keep_id`` chooses by run number before anything is read.

    Returns the runs (by run number) and a one-line note for each folder left out.
    """
    root = Path(root)
    if (root / "run.json").is_file():
        folders = [root]
    elif root.is_dir():
        folders = [p for p in root.iterdir() if p.is_dir() and RUN_FOLDER.fullmatch(p.name)]
    else:
        return [], [f"{root}: not a folder"]
    runs, notes = [], []
    for folder in sorted(folders, key=lambda p: (int(RUN_FOLDER.fullmatch(p.name)["number"])
                                                 if RUN_FOLDER.fullmatch(p.name) else -1, p.name)):
        number = RUN_FOLDER.fullmatch(folder.name)
        if keep_id is not None and number is not None and not keep_id(int(number["number"])):
            continue
        try:
            runs.append(read_run_folder(folder))
        except RecordError as err:
            notes.append(f"left out {folder}: {err}")
    return runs, notes
