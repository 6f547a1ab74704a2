"""The run's priority function: the ``codeit_priority`` schemes the config selects, mixed.

The glue between the replay buffer (a data structure that knows nothing of plugins) and the plugin
manager: :class:`HookPriority` turns the selected schemes and their weights into the buffer's
priority function, :func:`make_buffer` builds a run's buffer from its config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from codeit.config import section
from codeit.plugins import UnknownComponentError, priority_weights
from codeit.run.buffer import COLUMNS, ReplayBuffer

__all__ = ["HookPriority", "make_buffer"]


class HookPriority:
    """The run's priority function: ``sum(w_s * score_s) / sum(w_s) + epsilon`` over the schemes of
    ``weights`` (default: ``config["plugins"]["priority"]``), each score from the
    ``codeit_priority`` hook of plugin manager ``pm``."""

    def __init__(self, pm: Any, config: Mapping[str, Any] | None = None, *,
                 weights: Mapping[str, float] | None = None, epsilon: float | None = None) -> None:
        self.pm = pm
        self.config = config or {}
        self.weights = dict(weights) if weights is not None else priority_weights(self.config)
        if epsilon is None:
            epsilon = section(self.config, "buffer")["epsilon"]
        self.epsilon = float(epsilon)
        if not self.epsilon > 0:
            raise ValueError(f"priority epsilon must be > 0, got {self.epsilon}")
        self.check()

    def check(self) -> None:
        """Raise :class:`~codeit.plugins.UnknownComponentError` now for a selected scheme no plugin provides."""
        empty = {name: np.zeros(0, dtype) for name, dtype in COLUMNS.items()}
        empty["policy"] = np.zeros(0, bool)
        self._scores(empty)

    def _scores(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(columns["accuracy"])
        total = np.zeros(n, dtype=np.float64)
        weight_sum = sum(self.weights.values())
        for name, weight in self.weights.items():
            scores = self.pm.hook.codeit_priority(name=name, columns=columns, config=self.config)
            if scores is None:
                raise UnknownComponentError(f"no plugin provides priority scheme {name!r} "
                                  f"(config plugins.priority; `codeit plugins` lists the plugins)")
            scores = np.asarray(scores, dtype=np.float64)
            if scores.shape != (n,):
                raise ValueError(f"priority scheme {name!r} returned shape {scores.shape}, expected ({n},)")
            if n and not (np.all(scores >= 0.0) and np.all(scores <= 1.0)):
                raise ValueError(f"priority scheme {name!r} returned scores outside [0, 1]")
            if weight:
                total += (weight / weight_sum) * scores
        return total

    def __call__(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._scores(columns) + self.epsilon


def make_buffer(config: Mapping[str, Any], pm: Any) -> ReplayBuffer:
    """A run's buffer: :class:`HookPriority` over ``config["plugins"]["priority"]`` and
    ``config["buffer"]["capacity"]``."""
    return ReplayBuffer(HookPriority(pm, config), capacity=int(section(config, "buffer")["capacity"]))
