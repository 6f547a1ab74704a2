"""The `codeit` command and importing the package, as a newcomer meets them."""

from __future__ import annotations

import subprocess
import sys

from codeit.plugins import get_plugin_manager, summary


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, check=False)


def test_importing_the_experiment_is_silent():
    proc = run("-c", "import codeit.experiment")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_help_has_no_markup_and_user_errors_are_one_line():
    proc = run("-m", "codeit.cli", "--help")
    assert proc.returncode == 0 and "``" not in proc.stdout and "execute" in proc.stdout
    proc = run("-m", "codeit.cli", "plugins", "--module", "no_such_plugin_module")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("codeit plugins: error: ") and "no_such_plugin_module" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run("-m", "codeit.cli", "plugins", "--module", "no_such_plugin_module", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_plugin_descriptions_are_whole_sentences():
    assert summary("Mutator ``depth1``: depth-1 mutations (one call\nreplaced). More here.\n\nDetails.") == \
        "Mutator depth1: depth-1 mutations (one call replaced)."
    rows = get_plugin_manager().describe()
    depth1 = next(doc for name, _, _, doc in rows if name == "depth1")
    assert depth1.endswith(".") and "``" not in depth1
