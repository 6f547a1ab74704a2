"""The experiment's command line as a user types it: plugin selection (a list, a weighted mix, a
module in the working folder), one-line user errors, misspelled keys, training programs that do
not parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "experiments" / "codeit.py"

pytestmark = pytest.mark.timeout(300)

#: small enough for a few seconds per run after start-up
TINY = ["with", "smoke", "n_iterations=1", "data.n_search_tasks=2", "data.n_train_tasks=40", "init.mutated=10",
        "random_programs.per_task=1", "train.policy_samples=8", "train.initial_samples=8", "policy.n_samples=1",
        "policy.max_new_tokens=16", "execution.workers=1", "checkpoint.every=0"]

SCHEME = textwrap.dedent('''
    """A third-party priority scheme in the working folder: it notes every call it answers."""
    import numpy as np

    def codeit_priority(name, columns, config):
        if name != "squared":
            return None
        with open("calls.txt", "a") as f:
            f.write(f"{len(columns['accuracy'])}\\n")
        return np.asarray(columns["accuracy"], dtype=float) ** 2
''')


def experiment(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The experiment's command line in a fresh interpreter, in folder ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k not in ("CODEIT_MONGO_URL", "PYTHONPATH")}
    proc = subprocess.run([sys.executable, str(EXPERIMENT), *args], cwd=cwd, env=env, capture_output=True, check=False,
                          text=True, timeout=280)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def command_line(tmp_path: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The same command line in this interpreter (Sacred's parser, our experiment), from ``tmp_path``:
    ``(exit status, what it printed)``."""
    from codeit.experiment import make_experiment

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CODEIT_MONGO_URL", raising=False)
    ex = make_experiment(file_root=tmp_path / "runs", use_env=False, save_git_info=False)
    try:
        ex.run_commandline(["codeit.py", *args])
        status = 0
    except SystemExit as stop:
        status = stop.code or 0
    out = capsys.readouterr()
    return status, out.out + out.err


def config_of(cwd: Path) -> dict:
    (run,) = [p for p in (cwd / "runs").iterdir() if (p / "config.json").exists()]
    return json.loads((run / "config.json").read_text())


@pytest.mark.slow
def test_a_weighted_mix_with_a_scheme_from_the_working_folder_as_typed_in_a_shell(tmp_path):
    (tmp_path / "my_priority.py").write_text(SCHEME)
    selection = 'plugins.priority={"squared": 1.0, "performance": 0.5}'
    proc = experiment(tmp_path, *TINY, 'plugins.modules=["my_priority"]', selection)
    assert (tmp_path / "calls.txt").read_text().split(), "the scheme was never asked"
    assert config_of(tmp_path)["plugins"]["priority"] == {"squared": 1.0, "performance": 0.5}
    assert "Added new config entry" not in proc.stderr and "Changed type" not in proc.stderr


@pytest.mark.parametrize("module", ["my_priority", "schemes/squared_scheme.py"])
def test_a_listed_scheme_from_a_module_or_a_file(tmp_path, monkeypatch, capsys, module):
    (tmp_path / "schemes").mkdir()
    (tmp_path / "schemes" / "squared_scheme.py").write_text(SCHEME)
    (tmp_path / "my_priority.py").write_text(SCHEME)
    status, printed = command_line(tmp_path, monkeypatch, capsys, *TINY, f'plugins.modules=["{module}"]',
                                   'plugins.priority=["squared"]')
    assert status == 0, printed[-2000:]
    assert (tmp_path / "calls.txt").read_text().split(), "the scheme was never asked"
    assert config_of(tmp_path)["plugins"]["priority"] == ["squared"]


@pytest.mark.parametrize("args,message", [
    (['plugins.priority=["nope"]'], "no plugin provides priority scheme 'nope'"),
    (["with", "codeit_data", "data.path=/no/such/folder"], "needs the CodeIt data folder: /no/such/folder"),
    (["resume_from=4242"], "resume_from=4242: neither a folder nor a run id"),
    (['plugins.modules=["no_such_module_here"]'], "cannot import plugin module 'no_such_module_here'"),
    (["policy.temprature=0.5"], "'policy.temprature' (did you mean 'policy.temperature'?)"),
    (["with", "gpu_check"], "policy.device=cuda but torch sees no CUDA device"),
])
def test_user_errors_are_one_line_and_a_nonzero_exit(tmp_path, monkeypatch, capsys, args, message):
    extra = list(args)
    head = TINY
    if extra[0] == "with":  # more named configs go right after smoke
        head, extra = [*TINY[:2], *extra[1:2], *TINY[2:]], extra[2:]
    status, printed = command_line(tmp_path, monkeypatch, capsys, *head, *extra)
    assert status != 0
    assert message in printed, printed[-2000:]
    assert "Traceback" not in printed, printed[-2000:]


@pytest.mark.parametrize("args,message", [
    (["n_iteration=2"], "unknown config key 'n_iteration' (did you mean 'n_iterations'?)"),
    pytest.param(["-m", "127.0.0.1:1:codeit"], "MongoDB at mongodb://127.0.0.1:1 (database 'codeit') is unreachable",
                 marks=pytest.mark.slow),  # waits out the driver's server selection
])
def test_user_errors_in_a_shell_are_one_line(tmp_path, args, message):
    proc = experiment(tmp_path, *TINY, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(proc.stderr.splitlines()) <= 6, proc.stderr[-2000:]  # Sacred's start/fail lines and ours


def test_a_misspelled_plugins_key_is_named_with_a_suggestion(tmp_path, monkeypatch, capsys):
    status, printed = command_line(tmp_path, monkeypatch, capsys, *TINY, "n_iterations=0",
                                   'plugins.prority=["uniform"]')
    assert status == 0, printed[-2000:]
    assert "config plugins.prority is not read by codeit itself" in printed
    assert "did you mean 'priority'?" in printed
