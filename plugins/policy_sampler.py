"""Sampler plugin ``policy``: programs sampled from the run's model for each search task.

Each task is encoded as model input (:mod:`codeit.encoding`, with the model's own tokenizer where it
offers ``encode_task``), the model draws ``n`` programs per task (``config["policy"]["n_samples"]``,
default 24) in batches, and the decoded texts are parsed with :mod:`codeit.program`: unparsable ones
are counted and dropped here, so they are never executed.  The counts go to the model's
``last_metrics`` (``sample_parsed``, ``sample_unparsable``, ``sample_parse_rate``) when it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codeit.hookspecs import hookimpl

NAME = "policy"
DEFAULT_N = 24


def _encode(model, task, settings: Mapping[str, Any]) -> str:
    encode = getattr(model, "encode_task", None)
    if encode is not None:
        return encode(task)
    from codeit.encoding import encode_task

    return encode_task(task, n_examples=settings.get("n_examples"),
                       max_tokens=int(settings.get("max_side_tokens", 512)))


def sample_programs(tasks: Sequence, model, rng: Any, config: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``{task key: [parsable program text, ...]}`` (sampling order, duplicates kept)."""
    from codeit_plugins.t5 import policy_settings

    from codeit.policy.sampling import parse_samples

    settings = policy_settings(config)
    n = int(settings.get("n_samples", DEFAULT_N))
    inputs = [_encode(model, task, settings) for task in tasks]
    texts = model.sample(inputs, n, config, rng)
    programs, stats = parse_samples(texts)
    metrics = getattr(model, "last_metrics", None)
    if isinstance(metrics, dict):
        metrics.update(sample_parsed=stats.parsed, sample_unparsable=stats.unparsable,
                       sample_distinct=stats.distinct, sample_parse_rate=stats.parse_rate)
    return {task.key: [p.text for p in progs] for task, progs in zip(tasks, programs)}


@hookimpl
def codeit_sample_programs(name: str, tasks: Sequence, model, iteration: int, rng: Any,
                           config: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Sample programs for ``tasks`` from ``model`` (sampler ``policy``)."""
    if name != NAME:
        return None
    if model is None:
        raise ValueError("the 'policy' sampler needs a model (config plugins.model)")
    return sample_programs(tasks, model, rng, config)
