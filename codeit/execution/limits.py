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

__all__ = ["DEFAULT_LIMITS", "MAX_GRID_CELLS", "ExecutionLimits", "ExecutionResult", "grid_cells", "oversize"]

#: Most cells an input or an output grid may have (an ARC grid has at most 900).  A bigger grid costs
#: more to check, copy and move between processes than any program may run, so it fails with
#: ``limit:`` instead (an input is then never sent to a worker).
MAX_GRID_CELLS = 1_000_000

_ROWS = (list, tuple)


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


def grid_cells(value: Any) -> int:
    """The cells of a grid-like value (a list or tuple of rows), in time proportional to its rows; at
    least :data:`MAX_GRID_CELLS` + 1 for more rows than that; 0 for anything else."""
    if type(value) not in _ROWS:
        return 0
    if len(value) > MAX_GRID_CELLS:
        return len(value)
    try:
        return sum(map(len, value))
    except TypeError:  # a row without a length: not a grid, counted as far as it goes
        return sum(len(row) for row in value if type(row) in _ROWS)


def oversize(value: Any, what: str) -> str | None:
    """The ``limit:`` reason of an ``what`` ("input", "output") grid of more than
    :data:`MAX_GRID_CELLS` cells, else ``None``."""
    cells = grid_cells(value)
    if cells <= MAX_GRID_CELLS:
        return None
    return f"limit: {what} grid of {cells:,} cells (at most {MAX_GRID_CELLS:,})"
