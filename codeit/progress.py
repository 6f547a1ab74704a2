"""Progress of long phases: a bar on a terminal, a periodic line in a log, nothing for short work.

Every phase of a run that can last more than a few seconds (mutation, execution, training,
sampling, scoring) reports through :func:`progress_bar`, so a run never sits silent for minutes.
The bar appears only after ``delay`` seconds; on a terminal it refreshes twice a second, in a file
(Sacred's ``cout.txt``, a CI log) it writes a line at most every 30 seconds, and Sacred collapses
the carriage-return updates.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


class _Silent:
    """A bar that shows nothing (progress switched off, or tqdm missing)."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, delay: float = 2.0) -> Any:
    """A tqdm bar for ``total`` steps (``update(n)``, ``set_postfix(...)``, ``close()``), or a silent one."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _Silent()
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, delay=delay, leave=False, dynamic_ncols=tty,
                mininterval=0.5 if tty else 30.0, smoothing=0.1)
