"""Sampler plugin ``policy``: programs sampled from the run's model for each search task.

Each task is encoded by the model (``Model.encode_task``), the model draws ``n`` programs per task
(``config["policy"]["n_samples"]``, default 24), and the decoded texts are parsed with
:mod:`codeit.program`: unparsable ones are counted and dropped here, so they are never executed.
The model's figures and the parse counts (``sample_parsed``, ``sample_unparsable``,
``sample_parse_rate``) come back as the call's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codeit.config import section
from codeit.hookspecs import Proposals, hookimpl

NAME = "policy"


#: tasks per model call when the loop executes programs while the model samples (``stream``)
STREAM_TASKS = 32


def sample_programs(tasks: Sequence, model, rng: Any, config: Mapping[str, Any] | None,
                    stream: Callable[[Mapping[str, list[str]]], None] | None = None) -> Proposals:
    """Parsable program texts per task key (sampling order, duplicates kept), and the call's figures.

    With ``stream`` the tasks are sampled :data:`STREAM_TASKS` at a time and each batch is handed
    over as soon as it is parsed (the loop executes it meanwhile)."""
    from codeit.policy.sampling import parse_samples

    n = int(section(config, "policy")["n_samples"])
    step = STREAM_TASKS if stream is not None else max(1, len(tasks))
    out: dict[str, list[str]] = {}
    texts: list[list[str]] = []
    figures: dict[str, float] = {}
    for start in range(0, len(tasks), step):
        chunk = tasks[start:start + step]
        samples = model.sample([model.encode_task(task) for task in chunk], n, config, rng)
        batch = {task.key: [p.text for p in progs] for task, progs in zip(chunk, parse_samples(samples.texts)[0])}
        if stream is not None:
            stream(batch)
        out.update(batch)
        texts += samples.texts
        for name, value in samples.metrics.items():
            figures[name] = figures.get(name, 0.0) + value
    for name in [k for k in figures if k.endswith("_per_s")]:  # rates of the whole call, not their sum
        stem, seconds = name[:-len("_per_s")], figures.get("sample_seconds", 0.0)
        figures[name] = figures[stem] / seconds if stem in figures and seconds > 0 else 0.0
    stats = parse_samples(texts)[1]
    metrics = {**figures, "sample_parsed": stats.parsed, "sample_unparsable": stats.unparsable,
               "sample_distinct": stats.distinct, "sample_parse_rate": stats.parse_rate}
    return Proposals(out, metrics)


@hookimpl
def codeit_sample_programs(name: str, tasks: Sequence, model, iteration: int, rng: Any,
                           config: Mapping[str, Any], stream=None) -> Proposals | None:
    """Sample programs for ``tasks`` from ``model`` (sampler ``policy``)."""
    if name != NAME:
        return None
    if model is None:
        raise ValueError("the 'policy' sampler needs a model (config plugins.model)")
    return sample_programs(tasks, model, rng, config, stream)
