"""The example third-party plugin package installs with pip and is picked up through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "codeit-priority-example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-installs the example (offline, no build isolation) into a private target folder."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("src")
    subprocess.run(["cp", "-r", str(EXAMPLE), str(build)], check=True)  # keep build files out of the repo
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(build / EXAMPLE.name)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        "pip could not build the example offline; the test environment needs setuptools>=70.1 (or the "
        "`wheel` package) for --no-build-isolation builds:\n" + result.stdout + result.stderr)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    return env


@pytest.mark.slow
def test_codeit_plugins_lists_the_installed_example(installed):
    out = subprocess.run([sys.executable, "-m", "codeit.cli", "plugins"], env=installed, capture_output=True,
                         text=True, check=True).stdout
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("priority-example  [entry point, "
                                                                      "codeit-priority-example 0.1.0]"))
    assert [line.strip() for line in lines[row + 1:row + 3]] == ["codeit_mutate", "codeit_priority"]
    assert "priority  [builtin]" in out and "relabel  [builtin]" in out
    plain = subprocess.run([sys.executable, "-m", "codeit.cli", "plugins"], capture_output=True, text=True,
                           check=True).stdout
    assert "priority-example" not in plain  # only where it is installed


@pytest.mark.slow
def test_the_example_scheme_and_mutator_work_in_a_run(installed):
    script = textwrap.dedent("""
        import numpy as np
        from codeit.run.buffer import Entry, ReplayBuffer
        from codeit.run.priority import HookPriority
        from codeit.plugins import get_plugin_manager
        from codeit.tasks import Example, Task

        # the built-in mutator is switched off so that only the example's variants come back
        config = {"plugins": {"priority": {"accuracy-squared": 1.0}, "disable": ["depth1"]},
                  "buffer": {"epsilon": 0.001}}
        pm = get_plugin_manager(config)
        buffer = ReplayBuffer(HookPriority(pm, config))
        task = Task("t", (Example(((1, 2),), ((2, 1),)),))
        buffer.add_many([Entry(task, f"O = p{i}(I)", "t", "policy", a) for i, a in enumerate([1.0, 0.5, 0.0])])
        print(buffer.priorities.round(4).tolist())
        variants = pm.hook.codeit_mutate(program="x1 = vmirror(I)\\nO = rot90(x1)", task=task,
                                         rng=np.random.default_rng(0), config=config)
        print(sorted(v for vs in variants for v in vs))
        off = get_plugin_manager({"plugins": {"disable": ["priority-example"]}})
        print(off.hook.codeit_priority(name="accuracy-squared", columns={"accuracy": np.ones(1)}, config={}))
    """)
    out = subprocess.run([sys.executable, "-c", script], env=installed, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    priorities, variants, disabled = out.stdout.splitlines()
    assert priorities == "[1.001, 0.251, 0.001]"
    assert variants == "['x1 = hmirror(I)\\nO = rot90(x1)', 'x1 = vmirror(I)\\nO = rot270(x1)']"
    assert disabled == "None"
