"""The distributed layer without a Ray cluster: backend choice, Ray settings and errors, the exactly-once
chunk dispatcher (against a stand-in for Ray whose actors die on cue), sweep grids and their resources,
and a local sweep whose run fails by itself.  tests/test_ray.py runs the same code on real clusters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from codeit.config import PAPER_CONFIG
from codeit.distributed.cluster import INSTALL_HINT, RaySettings, is_loopback
from codeit.distributed.dispatch import ActorSet, LostWork
from codeit.distributed.sweep import Cell, cell_resources, plan, resolve_config
from codeit.errors import UserError
from codeit.execution.backend import check_backend, make_executor
from codeit.execution.executor import BatchExecutor

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- backend and settings


def test_the_local_backend_is_todays_executor_and_never_imports_ray():
    code = ("import sys\n"
            "from codeit.execution.backend import make_executor\n"
            "import codeit.run.loop, codeit.baseline.pipeline, codeit.experiment, codeit.execution.cli\n"
            "with make_executor({'backend': 'local', 'workers': 1}) as ex:\n"
            "    r = ex.run([('O = rot90(I)', [[[1, 2], [3, 4]]])])\n"
            "print(type(ex).__name__, r[0].outputs, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split("\n")[0] == "BatchExecutor (((3, 1), (4, 2)),) False"


def test_make_executor_reads_the_execution_section():
    executor = make_executor({**PAPER_CONFIG["execution"], "workers": 3, "chunk_size": 8, "timeout": 2.0})
    assert isinstance(executor, BatchExecutor)
    assert (executor.n_workers, executor.chunk_size, executor.limits.timeout) == (3, 8, 2.0)
    assert PAPER_CONFIG["execution"]["backend"] == "local"


def test_an_unknown_backend_is_one_clear_line():
    with pytest.raises(UserError, match="execution.backend must be one of local, ray, not 'dask'"):
        check_backend("dask")
    assert check_backend("ray") == "ray"


def test_ray_settings_come_from_the_execution_section():
    settings = RaySettings.from_config({"ray_address": "10.0.0.1:6379", "ray_actors": 4, "ray_actor_cpus": 2})
    assert (settings.address, settings.actors, settings.actor_cpus) == ("10.0.0.1:6379", 4, 2)
    assert RaySettings.from_config({}) == RaySettings()
    with pytest.raises(UserError, match="ray_actors must be at least 1"):
        RaySettings.from_config({"ray_actors": 0})


def test_ray_without_an_address_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(UserError, match='--ray-address HOST:PORT.*"local" to start a Ray instance'):
        RaySettings().resolved_address()
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert RaySettings().resolved_address() == "10.1.2.3:6379"
    assert RaySettings(address="local").resolved_address() == "local"


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True), ("ray://127.0.0.1:10001", True),
    ("10.0.0.1:6379", False), ("head.example.org:6379", False), ("auto", False)])
def test_loopback_addresses_are_recognised(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("command", [
    ["execute", "-", "--backend", "ray", "--ray-address", "local"],
    ["mutation-baseline", "--out", "OUT", "--samples", "10", "--backend", "ray", "--ray-address", "local"],
    ["sweep", "--configs", "smoke", "--seeds", "1", "--backend", "ray", "--ray-address", "local"]])
def test_backend_ray_without_ray_installed_is_one_line_saying_how_to_install_it(command, tmp_path):
    code = ("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
            "from codeit.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    command = [str(tmp_path / "out") if part == "OUT" else part for part in command]
    out = subprocess.run([sys.executable, "-c", code, *command], check=False, capture_output=True, text=True, input="",
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].endswith(INSTALL_HINT), out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------ the dispatcher, against a stand-in


class _Lost(Exception):
    """Stands for Ray's RayActorError."""


class _Ref:
    def __init__(self, value=None, error=None, ready=True):
        self.value, self.error, self.ready = value, error, ready


class _FakeRay:
    """Just enough of Ray for :class:`ActorSet`: results are ready at once (or never)."""

    exceptions = SimpleNamespace(RayActorError=_Lost)

    def __init__(self):
        self.killed = []

    def wait(self, refs, num_returns=1, timeout=None):
        ready = [r for r in refs if r.ready][:num_returns]
        if not ready:
            time.sleep(min(timeout or 0, 0.02))
        return ready, [r for r in refs if r not in ready]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, handle, no_restart=True):
        self.killed.append(handle.number)


class _Actor:
    """An actor answering ``payload * 10``; it dies at its ``dies_at``-th call (and stays dead)."""

    def __init__(self, number, calls, dies_at=None, starts=True, error=None):
        self.number, self.calls, self.dies_at, self.dead = number, calls, dies_at, False
        self.ping = SimpleNamespace(remote=lambda: _Ref(f"node/{number}", ready=starts))
        self.run = SimpleNamespace(remote=self._run)
        self.error = error

    def _run(self, payload):
        self.calls.append((self.number, payload))
        if self.error is not None:
            return _Ref(error=self.error)
        if self.dies_at is not None and len([c for c in self.calls if c[0] == self.number]) >= self.dies_at:
            self.dead = True
        return _Ref(error=_Lost(f"actor {self.number} died")) if self.dead else _Ref(payload * 10)


def _actor_set(plan_for, **kw):
    """An ActorSet whose n-th actor made is ``_Actor(n, calls, **plan_for(n))``."""
    calls, made = [], []

    def make():
        actor = _Actor(len(made) + 1, calls, **plan_for(len(made) + 1))
        made.append(actor)
        return actor

    lines = []
    actors = ActorSet(_FakeRay(), make, kw.pop("n_actors", 2), log=lines.append, **kw)
    return actors, calls, made, lines


def test_every_chunk_is_answered_exactly_once_when_an_actor_dies_holding_chunks():
    actors, calls, made, lines = _actor_set(lambda n: {"dies_at": 2} if n == 1 else {})
    with actors:
        results = list(actors.results(((i, i) for i in range(20)), lambda actor, p: actor.run.remote(p)))
    assert sorted(results) == [(i, i * 10) for i in range(20)]  # each chunk once, with its own result
    assert actors.replaced == 1 and actors.resent >= 1 and len(made) == 3  # actor 3 replaced actor 1
    lost_payloads = [p for n, p in calls if n == 1][1:]  # what actor 1 held when it died ...
    assert all(any(n != 1 and q == p for n, q in calls) for p in lost_payloads)  # ... was run again elsewhere
    assert any(line.startswith("ray: lost actor 1 on node/1") for line in lines)
    assert any("sent again (loss 1 of at most 3)" in line for line in lines)


def test_a_chunk_lost_more_often_than_allowed_fails_the_run():
    actors, _, _, _ = _actor_set(lambda n: {"dies_at": 1}, retries=2)
    with actors, pytest.raises(LostWork, match=r"chunk \d+ was lost 3 times \(ray_retries=2\)"):
        list(actors.results(((i, i) for i in range(4)), lambda actor, p: actor.run.remote(p)))


def test_an_error_of_the_clients_code_is_raised_not_retried():
    actors, calls, _, _ = _actor_set(lambda n: {"error": ValueError("a bug")})
    with actors, pytest.raises(ValueError, match="a bug"):
        list(actors.results(((i, i) for i in range(4)), lambda actor, p: actor.run.remote(p)))
    assert len(calls) <= 4  # the first failure ended the run: nothing was sent again


def test_work_waiting_without_any_live_actor_fails_after_the_start_timeout():
    actors, calls, _, _ = _actor_set(lambda n: {"starts": False}, start_timeout=0.3)
    with actors, pytest.raises(LostWork, match="no Ray actor has been alive for 0.3 s"):
        list(actors.results(((i, i) for i in range(2)), lambda actor, p: actor.run.remote(p)))
    assert calls == []  # an actor that never answered its ping is never given work


def test_results_are_read_a_bounded_window_ahead():
    read = []

    def source():
        for i in range(100):
            read.append(i)
            yield i, i

    actors, _, _, _ = _actor_set(lambda n: {}, n_actors=1, depth=2)
    with actors:
        first = next(iter(actors.results(source(), lambda actor, p: actor.run.remote(p))))
    assert first == (0, 0)
    assert len(read) <= 4  # window: twice what the one actor holds


# --------------------------------------------------------------------------------------------- sweeps


def test_a_grid_is_configs_times_seeds_with_the_values_on_every_run():
    cells = plan(["smoke", "smoke a2_no_relabeling"], [1, 2], ["n_iterations=2"])
    assert [c.label for c in cells] == ["smoke seed=1", "smoke seed=2", "smoke a2_no_relabeling seed=1",
                                        "smoke a2_no_relabeling seed=2"]
    assert cells[2].argv(mongo="127.0.0.1:27017:db") == [
        "with", "smoke", "a2_no_relabeling", "seed=1", "n_iterations=2", "-m", "127.0.0.1:27017:db"]
    assert plan([""], [7])[0].argv() == ["with", "seed=7"]


@pytest.mark.parametrize(("configs", "values", "message"), [
    (["smoke a2_no_relabelling"], [], "no named config 'a2_no_relabelling' \\(did you mean 'a2_no_relabeling'\\?\\)"),
    (["smoke"], ["n_iterations"], "expected KEY=VALUE"),
    (["smoke"], ["seed=3"], "the sweep sets it \\(use --seeds\\)"),
    (["smoke", "smoke"], [], "the same run twice")])
def test_a_bad_grid_is_one_clear_line(configs, values, message):
    with pytest.raises(UserError, match=message):
        plan(configs, [1], values)


def test_a_runs_resources_come_from_its_config():
    assert resolve_config(["smoke"], ["execution.workers=3", "policy.device='cuda'"])["execution"]["workers"] == 3
    assert cell_resources(Cell(("smoke",), 1)) == (2, 0.0, [])  # threads 1, workers 2
    assert cell_resources(Cell(("smoke",), 1), cpus=1) == (1, 0.0, [])
    assert cell_resources(Cell(("gpu_check",), 1), pin_workers=True) == (1, 1.0, ["execution.workers=1"])
    assert cell_resources(Cell(("smoke",), 1, ("threads=4",)), pin_workers=True) == (4, 0.0, [])
    assert cell_resources(Cell(("mutation_baseline", "smoke"), 1), gpus=0.5) == (2, 0.5, [])


@pytest.mark.slow
def test_a_run_that_fails_by_itself_is_reported_and_not_started_again(tmp_path):
    out = subprocess.run([sys.executable, "-m", "codeit.cli", "sweep", "--configs", "smoke", "--seeds", "1", "--set",
                          "no_such_key=1", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
                         check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**os.environ, "CODEIT_MONGO_URL": ""})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "smoke seed=1: FAILED (exit 1)" in out.stdout and "unknown config key 'no_such_key'" in out.stdout
    assert "attempt 2" not in out.stdout
    assert "sweep: 0 of 1 runs completed" in out.stdout
    assert (tmp_path / "out" / "logs" / "000-smoke-seed1-attempt1.log").is_file()
