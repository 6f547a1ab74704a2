"""Observer ``gpu_meter``: how busy the GPU was in each meta-iteration, measured by the driver.

While a meta-iteration runs, a background thread asks NVML every 100 ms what share of the last
sample period the GPU spent executing kernels (``torch.cuda.utilization``), and the mean becomes the
iteration's ``gpu_busy_fraction`` (0-1), with ``gpu_memory_peak_gb`` (torch's peak allocation).
A measurement, not an estimate: time the GPU sat idle while the CPUs sampled the buffer, executed
programs or wrote files counts as idle.  Does nothing without CUDA; without NVML (``pip install
nvidia-ml-py``, the ``gpu`` extra) it says so once and reports only the memory peak.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1


class Meter:
    """Polls the GPU's utilisation in a thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, read: Any) -> None:
        self.read = read  # () -> utilisation in percent
        self.samples: list[float] = []
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.samples, self.done = [], threading.Event()
        self.thread = threading.Thread(target=self._poll, name="codeit-gpu-meter", daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            try:
                self.samples.append(float(self.read()))
            except Exception as err:  # noqa: BLE001 - a failed reading is skipped, never fatal
                log.debug("gpu_meter: reading failed: %s", err)

    def stop(self) -> float | None:
        """The mean busy fraction since :meth:`start` (``None`` without a reading)."""
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        return sum(self.samples) / len(self.samples) / 100.0 if self.samples else None


_state: dict[str, Any] = {"meter": None, "checked": False}


def _meter() -> Meter | None:
    """The meter, when CUDA is in use and readable (decided once per process)."""
    if not _state["checked"]:
        _state["checked"] = True
        try:
            import torch
        except ImportError:  # pragma: no cover
            return None
        if not torch.cuda.is_available():
            return None
        try:
            torch.cuda.utilization()
            _state["meter"] = Meter(torch.cuda.utilization)
        except Exception as err:  # noqa: BLE001 - pynvml missing or NVML unusable
            log.warning("gpu_meter: no GPU busy fraction (%s: %s); pip install nvidia-ml-py", type(err).__name__, err)
            _state["meter"] = None
    return _state["meter"]


def codeit_iteration_start() -> None:
    meter = _meter()
    if meter is not None:
        import torch

        torch.cuda.reset_peak_memory_stats()
        meter.start()


def codeit_iteration_end(iteration: int, run: Any) -> None:
    meter = _meter()
    if meter is None:
        return
    import torch

    metrics = {"gpu_memory_peak_gb": torch.cuda.max_memory_allocated() / 2**30}
    busy = meter.stop()
    if busy is not None:
        metrics["gpu_busy_fraction"] = busy
    run.add_metrics(iteration, metrics)
