"""A tiny real Sacred experiment for the recording tests: two named configs, metrics, an artifact.

``make_experiment(observers, ...)`` builds a fresh ``Experiment`` each time (observers are per
experiment object).  Its main function logs ``loss`` and ``accuracy`` for ``steps`` steps, writes
an artifact ``report.txt``, and returns the final loss; ``hook(step, run)`` (optional) is called
after each step -- the tests use it to kill the database mid-run or to fail on purpose.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

from sacred import Experiment


def expected_loss(lr: float, step: int) -> float:
    return round(1.0 / (1.0 + lr * (step + 1)), 6)


def make_experiment(observers=(), *, hook: Callable | None = None, name: str = "tiny",
                    experiment_class=Experiment, **kwargs) -> Experiment:
    ex = experiment_class(name, save_git_info=False, **kwargs)
    ex.observers.extend(observers)

    @ex.config
    def config():
        lr = 0.1  # noqa: F841 - Sacred config entries
        steps = 5  # noqa: F841
        width = 8  # noqa: F841
        pause = 0.0  # noqa: F841 - seconds to sleep after each step

    @ex.named_config
    def small():
        lr = 0.5  # noqa: F841
        steps = 4  # noqa: F841
        width = 4  # noqa: F841

    @ex.named_config
    def large():
        lr = 0.05  # noqa: F841
        steps = 6  # noqa: F841
        width = 32  # noqa: F841

    @ex.main
    def main(_run, lr, steps, width, pause):
        loss = None
        for step in range(steps):
            loss = expected_loss(lr, step)
            _run.log_scalar("loss", loss, step)
            _run.log_scalar("accuracy", round(1.0 - loss, 6), step)
            print(f"step {step}: loss {loss}")
            if pause:
                time.sleep(pause)
            if hook is not None:
                hook(step, _run)
        fd, path = tempfile.mkstemp(suffix=".txt", prefix="tiny-report-")
        with os.fdopen(fd, "w") as f:
            f.write(f"width={width} lr={lr} final loss={loss}\n")
        try:
            _run.add_artifact(path, "report.txt")
        finally:
            os.unlink(path)
        return loss

    return ex
