"""Model plugin ``t5``: a T5 encoder-decoder policy (CodeT5-like sizes, or any pretrained T5).

``codeit_make_model("t5", config)`` builds a :class:`T5Model` from ``config["policy"]`` (the fields of
:class:`codeit.policy.PolicyConfig`; ``config["model"]`` is read too when it is a mapping)::

    policy:
      model: base            # tiny | small | base | large, or a pretrained name / local directory
      random_weights: false  # ablation A4 for a pretrained name
      device: auto           # auto | cpu | cuda | cuda:1
      precision: auto        # auto (bf16 CUDA; CPU: bf16 from small up where native, else fp32) | fp32 | bf16 | fp16
      lr: 5.0e-5
      batch_size: 8
      grad_accum: 64
      n_samples: 24
      temperature: 0.95
      max_new_tokens: 512

torch and transformers are imported only when a model is built, so listing plugins stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from codeit.hookspecs import Samples, hookimpl

NAME = "t5"


def policy_settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's settings: ``config["model"]`` (if a mapping) overlaid by ``config["policy"]``."""
    settings: dict[str, Any] = {}
    if config:
        for key in ("model", "policy"):
            section = config.get(key)
            if isinstance(section, Mapping):
                settings.update(section)
    return settings


class T5Model:
    """The :class:`codeit.hookspecs.Model` protocol around a :class:`codeit.policy.Policy`.

    ``train`` returns the epoch's metrics (``train_loss``, throughput, ...), ``sample`` the decoded
    program texts with the call's metrics.  ``policy`` is the underlying object for direct use.
    """

    def __init__(self, policy) -> None:
        self.policy = policy

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> T5Model:
        """The policy of ``config["policy"]``; on a CPU it trains and samples with ``config["threads"]``
        torch threads (None: every core, the executor's workers being idle then)."""
        from codeit.policy import Policy, PolicyConfig

        threads = (config or {}).get("threads")
        return cls(Policy(PolicyConfig.from_dict(policy_settings(config)), threads=int(threads) if threads else None))

    @property
    def tokenizer(self):
        return self.policy.tokenizer

    def encode_task(self, task) -> str:
        """The model input text of a task (``policy.n_examples`` demonstrations, each side capped at
        ``policy.max_side_tokens`` tokens of this model's tokenizer)."""
        return self.policy.encode_task(task)

    def train(self, examples: Sequence, config: Mapping[str, Any] | None = None) -> dict[str, float]:
        """One epoch on ``(input text, program text)`` pairs; the optimiser persists across calls."""
        stats = self.policy.train(examples)
        metrics = {"train_loss": stats.loss, "train_examples": stats.examples, "train_steps": stats.steps,
                   "train_dropped_long": stats.dropped_long,
                   "train_truncated_inputs": stats.truncated_inputs, "train_seconds": stats.seconds,
                   "train_examples_per_s": stats.examples_per_s, "train_tokens_per_s": stats.tokens_per_s,
                   "train_padding_fraction": stats.padding_fraction}
        return metrics

    def sample(self, inputs: Sequence[str], n: int, config: Mapping[str, Any] | None = None,
               rng: Any = None) -> Samples:
        """``n`` decoded program texts per input text (constrained to DSL tokens, cut at ``#``), and
        the call's figures (``sample_*``).

        With a ``numpy.random.Generator`` ``rng`` the draw is reproducible (torch's RNG is forked)."""
        seed = int(rng.integers(0, 2**63 - 1)) if rng is not None else None
        texts, stats = self.policy.sample_texts(list(inputs), n=n, seed=seed)
        return Samples(texts, {f"sample_{k}": v for k, v in stats.as_dict().items()})

    def save(self, path: str | os.PathLike) -> None:
        self.policy.save(path)

    def load(self, path: str | os.PathLike) -> None:
        self.policy.load(path)


@hookimpl
def codeit_make_model(name: str, config: Mapping[str, Any]) -> T5Model | None:
    """Build the ``t5`` policy model from ``config["policy"]``."""
    if name != NAME:
        return None
    return T5Model.from_config(config)
