"""Sampler plugin ``policy``: programs sampled from the run's model for each search task.

Each task is encoded by the model (``Model.encode_task``), the model draws ``n`` programs per task
(``config["policy"]["n_samples"]``, default 24), and the decoded texts are parsed with
:mod:`codeit.program`: unparsable ones are counted and dropped here, so they are never executed.
The model's figures and the parse counts (``sample_parsed``, ``sample_unparsable``,
``sample_parse_rate``) come back as the call's metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codeit.config import section
from codeit.hookspecs import Proposals, hookimpl

NAME = "policy"


def sample_programs(tasks: Sequence, model, rng: Any, config: Mapping[str, Any] | None) -> Proposals:
    """Parsable program texts per task key (sampling order, duplicates kept), and the call's figures."""
    from codeit.policy.sampling import parse_samples

    n = int(section(config, "policy")["n_samples"])
    samples = model.sample([model.encode_task(task) for task in tasks], n, config, rng)
    programs, stats = parse_samples(samples.texts)
    metrics = {**samples.metrics, "sample_parsed": stats.parsed, "sample_unparsable": stats.unparsable,
               "sample_distinct": stats.distinct, "sample_parse_rate": stats.parse_rate}
    return Proposals({task.key: [p.text for p in progs] for task, progs in zip(tasks, programs)}, metrics)


@hookimpl
def codeit_sample_programs(name: str, tasks: Sequence, model, iteration: int, rng: Any,
                           config: Mapping[str, Any]) -> Proposals | None:
    """Sample programs for ``tasks`` from ``model`` (sampler ``policy``)."""
    if name != NAME:
        return None
    if model is None:
        raise ValueError("the 'policy' sampler needs a model (config plugins.model)")
    return sample_programs(tasks, model, rng, config)
