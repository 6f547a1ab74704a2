"""Priority schemes performance, uniform, length, age, distance (docs/algorithm.md §4).

Each scheme scores a batch of buffer entries in [0, 1], vectorised over the ``columns`` arrays of
``codeit_priority``.  A run combines the schemes named in ``config["plugins"]["priority"]`` as a
weighted mean plus a small epsilon (:class:`codeit.run.buffer.HookPriority`); the paper's default is
``{"performance": 1}``, ablation A3 is ``{"uniform": 1}``.

Settings, ``config["plugins"]`` (optional): ``length_scale`` (tokens at which shortness reaches 0,
default 100) and ``age_horizon`` (iteration at which age reaches 1, default 100).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from codeit.hookspecs import hookimpl
from codeit.plugins import plugins_config

LENGTH_SCALE = 100
AGE_HORIZON = 100


def performance(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray:
    """Demonstration accuracy on the parent task (training programs: 1)."""
    return np.clip(columns["accuracy"].astype(np.float64), 0.0, 1.0)


def uniform(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray:
    """The same score for every entry: sampling ignores everything but the epsilon-free mean."""
    return np.ones(len(columns["accuracy"]), dtype=np.float64)


def length(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray:
    """Shortness ``1 - min(tokens / length_scale, 1)``."""
    scale = float(plugins_config(config).get("length_scale", LENGTH_SCALE))
    return 1.0 - np.minimum(columns["length"].astype(np.float64) / scale, 1.0)


def age(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray:
    """Recency ``min(iteration / age_horizon, 1)``: later entries score higher."""
    horizon = float(plugins_config(config).get("age_horizon", AGE_HORIZON))
    return np.clip(columns["iteration"].astype(np.float64) / horizon, 0.0, 1.0)


def distance(columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray:
    """Closeness of the program's outputs to the parent task's target grids (1: identical)."""
    return np.clip(columns["similarity"].astype(np.float64), 0.0, 1.0)


SCHEMES: dict[str, Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], np.ndarray]] = {
    "performance": performance,
    "uniform": uniform,
    "length": length,
    "age": age,
    "distance": distance,
}


@hookimpl
def codeit_priority(name: str, columns: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> np.ndarray | None:
    scheme = SCHEMES.get(name)
    return None if scheme is None else scheme(columns, config or {})
