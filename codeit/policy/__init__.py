"""The policy: T5 seq2seq model construction, training, constrained sampling and checkpoints.

Importing this package imports torch and transformers; the rest of :mod:`codeit` does not need it.
"""

from codeit.policy.model import SIZES, ModelSpec, make_model
from codeit.policy.policy import Policy, PolicyConfig, SampleResult
from codeit.policy.sampling import ParseStats, SampleConfig, SampleStats
from codeit.policy.training import TrainConfig, TrainStats

__all__ = ["SIZES", "ModelSpec", "ParseStats", "Policy", "PolicyConfig", "SampleConfig", "SampleResult",
           "SampleStats", "TrainConfig", "TrainStats", "make_model"]
