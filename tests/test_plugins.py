"""The plugin manager: built-ins via entry points, config modules, disabling, pending-hook checks, CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from codeit.plugins import PluginError, get_plugin_manager, plugins_config, priority_weights, selected_names

BUILTINS = {"priority": "codeit_plugins.priority", "relabel": "codeit_plugins.relabel"}


def write_module(tmp_path, monkeypatch, name, source):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return name


def test_builtins_are_registered_through_entry_points():
    pm = get_plugin_manager()
    for name, module in BUILTINS.items():
        plugin = pm.get_plugin(name)
        assert plugin is not None and plugin.__name__ == module
        assert pm.origins[name] == "builtin"
    rows = {name: hooks for name, _, hooks, _ in pm.describe()}
    assert rows["priority"] == ["codeit_priority"] and rows["relabel"] == ["codeit_relabel"]


def test_config_modules_register_after_builtins_and_can_override(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "my_priorities", """
        import numpy as np

        def codeit_priority(name, columns):  # unmarked: the codeit_ prefix is enough
            if name in ("performance", "half"):
                return np.full(len(columns["accuracy"]), 0.5)
            return None
    """)
    pm = get_plugin_manager({"plugins": {"modules": [name]}})
    names = [n for n, _ in pm.list_name_plugin()]
    assert names.index(name) > names.index("priority")
    assert pm.origins[name] == "config plugins.modules"
    columns = {"accuracy": np.array([1.0, 0.0])}
    assert pm.hook.codeit_priority(name="half", columns=columns, config={}).tolist() == [0.5, 0.5]
    # registered later, asked first: overrides the built-in "performance"
    assert pm.hook.codeit_priority(name="performance", columns=columns, config={}).tolist() == [0.5, 0.5]
    assert pm.hook.codeit_priority(name="length", columns={"length": np.array([0, 100])},
                                   config={}).tolist() == [1.0, 0.0]


def test_misspelled_hook_fails_at_start_with_a_clear_message(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "typo_plugin", """
        def codeit_priorty(name, columns, config):
            return None
    """)
    with pytest.raises(PluginError) as info:
        get_plugin_manager({"plugins": {"modules": [name]}})
    message = str(info.value)
    assert "plugin 'typo_plugin' implements unknown hook 'codeit_priorty'" in message
    assert "did you mean 'codeit_priority'?" in message


def test_wrong_hook_arguments_fail_at_registration(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "bad_args_plugin", """
        def codeit_relabel(name, task, program, outputs, weather):
            return None
    """)
    with pytest.raises(PluginError, match=r"bad_args_plugin.*codeit_relabel.*weather.*not be found in the hookspec"):
        get_plugin_manager({"plugins": {"modules": [name]}})


def test_unimportable_module_is_reported():
    with pytest.raises(PluginError, match="cannot import plugin module 'no_such_module_xyz'"):
        get_plugin_manager({"plugins": {"modules": ["no_such_module_xyz"]}})


def test_disable_a_plugin_by_name(tmp_path, monkeypatch):
    pm = get_plugin_manager({"plugins": {"disable": ["relabel"]}})
    assert pm.get_plugin("relabel") is None and pm.is_blocked("relabel")
    assert pm.get_plugin("priority") is not None
    assert pm.hook.codeit_relabel(name="hindsight", task=None, program="", outputs=[], source="policy",
                                  iteration=0, config={}) is None
    name = write_module(tmp_path, monkeypatch, "typo_plugin2", "def codeit_priorty(): pass\n")
    pm = get_plugin_manager({"plugins": {"modules": [name]}}, disable=[name])  # blocked: never imported
    assert pm.get_plugin(name) is None and name not in sys.modules


def test_plugin_objects_and_entry_points_off():
    class Observer:
        def __init__(self):
            self.seen = []

        def codeit_metrics(self, iteration, metrics):
            self.seen.append((iteration, dict(metrics)))

    observer = Observer()
    pm = get_plugin_manager(plugins=[("observer", observer)], entry_points=False)
    assert [n for n, _ in pm.list_name_plugin()] == ["observer"]
    pm.hook.codeit_metrics(iteration=2, metrics={"solved": 3}, config={})
    assert observer.seen == [(2, {"solved": 3})]


def test_selection_helpers():
    assert selected_names({}, "relabel") == ["hindsight"]
    assert selected_names({"plugins": {"relabel": "filter"}}, "relabel") == ["filter"]
    assert selected_names({"plugins": {"sampler": ["policy", "random"]}}, "sampler") == ["policy", "random"]
    assert priority_weights(None) == {"performance": 1.0}
    assert priority_weights({"plugins": {"priority": ["uniform"]}}) == {"uniform": 1.0}
    assert priority_weights({"plugins": {"priority": "age"}}) == {"age": 1.0}
    assert priority_weights({"plugins": {"priority": {"performance": 2, "length": 0}}}) == {
        "performance": 2.0, "length": 0.0}
    with pytest.raises(PluginError, match="positive sum"):
        priority_weights({"plugins": {"priority": {"performance": 0}}})
    with pytest.raises(PluginError, match="must be a mapping"):
        plugins_config({"plugins": ["x"]})


@pytest.mark.slow
def test_codeit_plugins_command_lists_builtins_and_their_hooks():
    out = subprocess.run([sys.executable, "-m", "codeit.cli", "plugins"], capture_output=True, text=True,
                         check=True).stdout
    lines = out.splitlines()
    for name in BUILTINS:
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{name}  [builtin]"))
        assert lines[row + 1].strip() == f"codeit_{name}"
    disabled = subprocess.run([sys.executable, "-m", "codeit.cli", "plugins", "--disable", "relabel"],
                              capture_output=True, text=True, check=True).stdout
    assert "disabled: relabel" in disabled and "relabel  [builtin]" not in disabled
    bad = subprocess.run([sys.executable, "-m", "codeit.cli", "plugins", "-m", "no_such_module_xyz"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stdout == "" and "cannot import plugin module" in bad.stderr
