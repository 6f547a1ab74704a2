"""Built-in priority schemes, through the plugin hook as a run uses them."""

from __future__ import annotations

import numpy as np
import pytest

from codeit.plugins import get_plugin_manager
from codeit.run.buffer import Entry, ReplayBuffer
from codeit.run.priority import HookPriority
from codeit.tasks import Example, Task

COLUMNS = {
    "accuracy": np.array([0.0, 0.5, 1.0, 0.25], np.float32),
    "length": np.array([0, 50, 100, 250], np.int32),
    "iteration": np.array([0, 10, 100, 300], np.int32),
    "similarity": np.array([0.2, 0.4, 1.0, 0.0], np.float32),
    "policy": np.array([True, False, True, True]),
}


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager()


def score(pm, name, config=None):
    return pm.hook.codeit_priority(name=name, columns=COLUMNS, config=config or {})


def test_each_builtin_scheme(pm):
    assert np.allclose(score(pm, "performance"), [0.0, 0.5, 1.0, 0.25])
    assert np.allclose(score(pm, "uniform"), 1.0)
    assert np.allclose(score(pm, "length"), [1.0, 0.5, 0.0, 0.0])
    assert np.allclose(score(pm, "age"), [0.0, 0.1, 1.0, 1.0])
    assert np.allclose(score(pm, "distance"), [0.2, 0.4, 1.0, 0.0])
    assert score(pm, "no-such-scheme") is None


def test_scheme_settings_from_config(pm):
    config = {"plugins": {"length_scale": 200, "age_horizon": 20}}
    assert np.allclose(score(pm, "length", config), [1.0, 0.75, 0.5, 0.0])
    assert np.allclose(score(pm, "age", config), [0.0, 0.5, 1.0, 1.0])


def test_weighted_mean_plus_epsilon(pm):
    config = {"plugins": {"priority": {"performance": 3.0, "length": 1.0}}, "buffer": {"epsilon": 0.01}}
    expected = (3 * np.array([0.0, 0.5, 1.0, 0.25]) + np.array([1.0, 0.5, 0.0, 0.0])) / 4 + 0.01
    assert np.allclose(HookPriority(pm, config)(COLUMNS), expected)
    assert np.allclose(HookPriority(pm, {"plugins": {"priority": ["age", "distance"]}})(COLUMNS),
                       (np.array([0.0, 0.1, 1.0, 1.0]) + [0.2, 0.4, 1.0, 0.0]) / 2 + 1e-3)
    assert np.allclose(HookPriority(pm, {})(COLUMNS), np.array([0.0, 0.5, 1.0, 0.25]) + 1e-3)  # default


def test_uniform_ablation_samples_evenly_and_performance_does_not(pm):
    task = Task("t", (Example(((1,),), ((1,),)),))
    entries = [Entry(task, f"O = p{i}(I)", "t", "policy", 1.0 if i < 5 else 0.0) for i in range(50)]
    rng = np.random.default_rng(0)
    high = {}
    for scheme in ("uniform", "performance"):
        buffer = ReplayBuffer(HookPriority(pm, {"plugins": {"priority": [scheme]}}))
        buffer.add_many(entries)
        draws = np.concatenate([buffer.sample_indices(5, rng=rng) for _ in range(400)])
        high[scheme] = np.mean(draws < 5)
    assert abs(high["uniform"] - 0.1) < 0.03
    assert high["performance"] > 0.9


def test_bad_scheme_output_is_rejected():
    class Broken:
        def codeit_priority(self, name, columns):
            if name == "broken":
                return np.full(len(columns["accuracy"]), 2.0)
            return None

    pm = get_plugin_manager(plugins=[Broken()])
    prio = HookPriority(pm, {"plugins": {"priority": ["broken"]}})
    with pytest.raises(ValueError, match="outside"):
        prio(COLUMNS)
