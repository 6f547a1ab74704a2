"""Resource limits for running one program (the paper's values), and what a run returns.

Kept in a module of their own because every part of execution uses them: the in-process runner,
the shared evaluator, the worker processes and the clients of the worker pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from codeit.config import PAPER_CONFIG
from codeit.grids import Grid

_PAPER = PAPER_CONFIG["execution"]

__all__ = ["DEFAULT_LIMITS", "ExecutionLimits", "ExecutionResult"]


@dataclass(frozen=True)
class ExecutionLimits:
    """Resource limits for running one program (paper defaults).

    - ``timeout``: seconds a program may run on one input, all lines together (1.0 s).  The paper
      states only "a timeout per program"; 1 s is four times the per-line limit and far above what
      any published program needs (the slowest, ``a64e4611``, takes about 0.1 s per input).
    - ``line_timeout``: seconds one line may take (0.25 s, CodeIt's per-line limit); a slower line
      fails the program even if it finishes.
    - ``max_elements``: a value whose ``len()`` is at least this is dropped (1,000, CodeIt's
      ``max_state_size``); ``0`` switches the rule off.
    - ``memory_mb``: address-space cap per worker process in MiB (``RLIMIT_AS``); ``0`` for none.
      Not applied by the in-process :func:`run_program`.
    """

    timeout: float = _PAPER["timeout"]
    line_timeout: float = _PAPER["line_timeout"]
    max_elements: int = _PAPER["max_elements"]
    memory_mb: int = _PAPER["memory_mb"]

    @classmethod
    def from_config(cls, execution: Mapping[str, Any]) -> ExecutionLimits:
        """The limits of a run config's ``execution`` section (missing keys: the paper's)."""
        return cls(**{k: type(v)(execution.get(k, v)) for k, v in _PAPER.items() if k in cls.__dataclass_fields__})

    def __post_init__(self) -> None:
        if not self.timeout > 0 or not self.line_timeout > 0:
            raise ValueError("timeouts must be positive")
        if self.max_elements < 0 or self.memory_mb < 0:
            raise ValueError("max_elements and memory_mb must be >= 0")


DEFAULT_LIMITS = ExecutionLimits()


class ExecutionResult(NamedTuple):
    """The outcome of one program on a sequence of inputs, one entry per input.

    ``outputs[i]`` is the output grid or ``None``; ``errors[i]`` is ``None`` on success, else the
    reason.  ``values[i]`` is the raw value of ``O`` (any type; ``None`` where the program produced
    no ``O``) when the caller asked for it, else ``values`` is ``None``.
    """

    outputs: tuple[Grid | None, ...]
    errors: tuple[str | None, ...]
    values: tuple[Any, ...] | None = None

    @property
    def ok(self) -> bool:
        """True if every input gave a valid output grid."""
        return not any(self.errors)

    @property
    def n_valid(self) -> int:
        return sum(error is None for error in self.errors)
