"""The Ray backend and sweeps on real Ray: a local instance started by codeit (it must listen on
127.0.0.1 only) and a two-node cluster on 127.0.0.1 (tests/ray_cluster.py: a head and a second node,
each with its own raylet, object store and worker processes, token authentication on).

* the mutation baseline scored on the cluster gives the local backend's ``performance.csv``, with
  actors on both nodes;
* killing the second node's raylet mid-scoring loses no task and counts none twice;
* the CodeIt loop executing on the cluster gives the metrics of a local run with the same seed;
* a sweep of 2 named configs x 2 seeds at smoke size, as Ray tasks, lands 4 COMPLETED runs in the
  MongoDB-compatible server and prints their table;
* a sweep run killed mid-way is started again from its checkpoint (local backend).

The test process never imports ray (Ray's loopback mode must be set before that); Ray runs in
subprocesses.  Skipped, with the reason, without Ray or without the published data; .ci/run installs
the ``ray`` extra and has the data.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from codeit.distributed.cluster import LOOPBACK_ENV
from codeit.distributed.launch import resumable
from codeit.run.state import is_timing_metric
from codeit.tasks import default_data_dir

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "tests" / "ray_cluster.py"

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason='Ray is not installed (pip install -e ".[ray]"; .ci/run installs it)'),
    pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is needed to see what listens"),
    pytest.mark.timeout(1800),
    pytest.mark.slow,  # real Ray clusters start in tens of seconds
    pytest.mark.xdist_group("ray"),  # one pytest-xdist worker: the module's clusters are shared, not doubled
]

#: the baseline of these tests: 480 published mutants in 2 chunks on the first 62 evaluation tasks
#: (task 42, 1a2e2828, is solved by the first 120; a ranking pass runs too)
BASELINE = ["--samples", "480", "--chunk-size", "240", "--curve-step", "120", "--max-tasks", "62", "--no-progress"]


def data_dir() -> Path:
    folder = default_data_dir()
    if folder is None or not (Path(folder) / "evaluation").is_dir():
        pytest.skip("the published CodeIt data is absent ($CODEIT_DATA or ../shared/codeit-data)")
    return Path(folder)


# ------------------------------------------------------------------------------- processes, sockets


def descendants(pid: int) -> dict[int, str]:
    """Every process under ``pid`` (and ``pid`` itself): pid -> command name."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = name
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in names and p not in found:
            found[p] = names[p]
            todo += children.get(p, [])
    return found


def listening(pids: set[int]) -> list[tuple[str, str]]:
    """``(local address, process)`` of every TCP or UDP socket listening in one of ``pids``."""
    out = subprocess.run(["ss", "-Hltunp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append((fields[4], re.findall(r'"([^"]+)"', line)[0] if '"' in line else "?"))
    return found


def is_loopback_address(local: str) -> bool:
    host = local.rsplit(":", 1)[0].strip("[]").split("%")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # "*": every interface
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def kill_tree(pid: int) -> None:
    for p in sorted(descendants(pid), reverse=True):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------------------------- the clusters


class RayCluster:
    """tests/ray_cluster.py running: its address, the env a driver needs, the second node's raylet."""

    def __init__(self, folder: Path):
        self.folder = folder
        token = folder / "token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # token authentication for every process of this cluster, the driver included (docs: README)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), LOOPBACK_ENV: "0"}
        self.temp = tempfile.mkdtemp(prefix="cr", dir="/tmp")  # short: Ray's socket paths
        info = folder / "cluster.json"
        self.log = open(folder / "cluster.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(CLUSTER_SCRIPT), str(info), self.temp],
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 300
        while not info.is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the test cluster did not start:\n{(folder / 'cluster.log').read_text()[-3000:]}")
            time.sleep(0.2)
        self.info = json.loads(info.read_text())
        self.address = self.info["address"]

    def sockets(self) -> list[tuple[str, str]]:
        return listening(set(descendants(self.proc.pid)))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid)
            self.proc.wait(30)
        kill_tree(self.proc.pid)  # anything a lost node left behind
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = RayCluster(tmp_path_factory.mktemp("ray-cluster"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_cluster(tmp_path):
    """A cluster of its own, for a test that loses a node."""
    (tmp_path / "cluster").mkdir()
    running = RayCluster(tmp_path / "cluster")
    try:
        yield running
    finally:
        running.stop()


def codeit(*args: str, env=None, cwd=None, timeout=1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codeit.cli", *args], check=False, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def local_baseline(tmp_path_factory):
    """The reference: the baseline of :data:`BASELINE` on this machine's pool."""
    out = tmp_path_factory.mktemp("baseline") / "local"
    r = codeit("mutation-baseline", "--data", str(data_dir()), *BASELINE, "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def score_lines(out: Path) -> dict[str, list[str]]:
    """Per score file, the task keys of its records, in file order (a task twice = counted twice)."""
    found = {}
    for path in sorted((out / "scores").glob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()[1:] if line.strip()]
        assert not [r for r in records if r.get("failed")], f"{path.name}: tasks not scored"
        found[path.name] = [r["task"] for r in records]
    return found


def solutions(out: Path) -> dict:
    return json.loads((out / "solutions.json").read_text())


# -------------------------------------------------------------------------------------------- tests


def test_a_local_ray_instance_listens_only_on_127_0_0_1_and_runs_what_the_local_pool_runs(tmp_path):
    # a driver starts a local instance the way codeit does (execution.ray_address=local), runs jobs
    # on its actors, and lists every socket its process tree (GCS, raylet, agents, workers) listens on
    probe = r"""
import json, os, sys
from codeit.distributed.cluster import RaySettings
from codeit.distributed.executor import RayExecutor
from codeit.execution.executor import BatchExecutor
jobs = [("O = rot90(I)", [[[1, 2], [3, 4]]]), ("x1 = hmirror(I)\nO = vconcat(I, x1)", [[[1, 0], [0, 1]]]),
        ("O = no_such_primitive(I)", [[[1]]]), ("x1 = rot90(I)\nO = x1", [[[5]], [[1, 2]]])] * 40
with BatchExecutor(workers=2) as local:
    here = local.run(jobs)
with RayExecutor(settings=RaySettings(address="local", chunk_size=16)) as ex:
    on_ray = ex.run(jobs)
    print(json.dumps({"same": on_ray == here, "n": len(on_ray), "actors": len(ex.actors.actors),
                      "places": ex.actors.places}), flush=True)
    sys.stdin.read()  # Ray stays up until the test has looked
"""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", LOOPBACK_ENV)}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="cl", dir="/tmp")
    errors = open(tmp_path / "probe.err", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-c", probe], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=tmp_path)
    try:
        # the probe prints once its actors ran, then waits (Ray still up) until its input closes
        line = proc.stdout.readline()
        assert line, (tmp_path / "probe.err").read_text()[-3000:]
        report = json.loads(line)
        sockets = listening(set(descendants(proc.pid)))
    finally:
        proc.stdin.close()
        proc.wait(120)
        kill_tree(proc.pid)
        errors.close()
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert report["same"] and report["n"] == 160  # the same results as the local pool, in job order
    # one actor per CPU of this 2-core machine; on a loaded machine the second may still be starting
    # when the first has run every job (work never waits for all actors), so only one may have a place
    assert report["actors"] == 2 and 1 <= len(report["places"]) <= 2
    owners = {name for _, name in sockets}
    assert {"gcs_server", "raylet"} <= owners, sockets  # Ray's servers are among what was checked
    assert sockets and all(is_loopback_address(local) for local, _ in sockets), sockets


def test_the_test_cluster_has_two_nodes_listening_on_loopback_only(cluster):
    sockets = cluster.sockets()
    assert sum(name == "raylet" for _, name in sockets) >= 4  # two raylets: node manager + object manager each
    assert all(is_loopback_address(local) for local, _ in sockets), sockets


@pytest.mark.slow
def test_the_baseline_on_ray_gives_the_local_performance_csv(cluster, local_baseline, tmp_path):
    out = tmp_path / "ray"
    r = codeit("mutation-baseline", "--data", str(data_dir()), *BASELINE, "--backend", "ray",
               "--ray-address", cluster.address, "--out", str(out), env=cluster.env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ray: 2 actor(s) of 1 worker process(es) each" in r.stdout
    assert "work done by 2 actor(s) on 2 node(s)" in r.stdout  # both nodes scored
    expected = (local_baseline / "performance.csv").read_text()
    assert (out / "performance.csv").read_text() == expected
    assert float(next(csv.reader(expected.splitlines()))[1]) > 0  # a real curve: solved from the start
    assert solutions(out) == solutions(local_baseline)
    assert {k: sorted(v) for k, v in score_lines(out).items()} == \
        {k: sorted(v) for k, v in score_lines(local_baseline).items()}


@pytest.mark.slow
def test_losing_a_node_mid_scoring_loses_nothing_and_counts_nothing_twice(fresh_cluster, local_baseline, tmp_path):
    # start from the reference's mutated chunks (same sequence), so the run goes straight to scoring
    out = tmp_path / "ray-lost-node"
    (out / "mutated").mkdir(parents=True)
    for path in (local_baseline / "mutated").iterdir():
        shutil.copy(path, out / "mutated" / path.name)
    shutil.copy(local_baseline / "manifest.json", out / "manifest.json")
    first = out / "scores" / "chunk_0000.jsonl"
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "codeit.cli", "mutation-baseline", "--data", str(data_dir()),
                             *BASELINE, "--backend", "ray", "--ray-address", fresh_cluster.address, "--out", str(out)],
                            stdout=log, stderr=subprocess.STDOUT, env=fresh_cluster.env, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (first.is_file() and len(first.read_text().splitlines()) >= 4):  # header + 3 tasks scored
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "scoring did not start"
            time.sleep(0.1)
        os.kill(fresh_cluster.info["second_raylet_pid"], signal.SIGKILL)  # the second node is lost
        proc.wait(1200)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "ray: lost actor" in output and "sent again" in output, output[-3000:]
    assert (out / "performance.csv").read_text() == (local_baseline / "performance.csv").read_text()
    assert solutions(out) == solutions(local_baseline)
    for name, tasks in score_lines(out).items():  # every task once per score file: none lost, none twice
        assert not [t for t, n in Counter(tasks).items() if n > 1], f"{name}: tasks counted twice"
        assert sorted(tasks) == sorted(score_lines(local_baseline)[name]), f"{name}: tasks lost"


def loop_metrics(folder: Path) -> dict[str, list]:
    """A run's metrics (values per meta-iteration), wall-clock ones left out."""
    logged = json.loads((folder / "metrics.json").read_text())
    return {name: m["values"] for name, m in logged.items() if not is_timing_metric(name)}


@pytest.mark.slow
def test_the_loop_on_ray_gives_the_local_runs_metrics(cluster, tmp_path):
    env = {**cluster.env, "CODEIT_MONGO_URL": ""}
    script = str(REPO / "experiments" / "codeit.py")
    for name, extra in (("local", []), ("ray", ["execution.backend=ray", f"execution.ray_address={cluster.address}"])):
        (tmp_path / name).mkdir()
        r = subprocess.run([sys.executable, script, "with", "smoke", "n_iterations=1", "seed=5",
                            # limits no program reaches on a loaded machine: equal runs need equal time-limit hits
                            "execution.timeout=20.0", "execution.line_timeout=10.0", *extra], check=False,
                           capture_output=True, text=True, env=env, cwd=tmp_path / name, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    local, on_ray = loop_metrics(tmp_path / "local" / "runs" / "1"), loop_metrics(tmp_path / "ray" / "runs" / "1")
    assert local["programs_distinct"][0] > 0 and local["programs_valid"][0] > 0  # programs were executed
    assert on_ray == local
    config = json.loads((tmp_path / "ray" / "runs" / "1" / "config.json").read_text())
    assert config["execution"]["backend"] == "ray"


@pytest.mark.slow
@pytest.mark.mongo
def test_a_sweep_on_ray_lands_its_runs_in_mongodb_and_prints_their_table(cluster, mongo_db, tmp_path):
    import pymongo

    url, db_name = mongo_db
    spec = f"{url.rstrip('/')}/{db_name}"
    r = codeit("sweep", "--configs", "smoke", "smoke a2_no_relabeling", "--seeds", "1", "2", "--set", "n_iterations=1",
               "--backend", "ray", "--ray-address", cluster.address, "--cpus-per-run", "1", "-m", spec,
               "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), env=cluster.env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    assert "sweep: 4 runs as Ray tasks" in r.stdout and "sweep: 4 of 4 runs completed" in r.stdout
    assert len(re.findall(r": run \d+ started on ", r.stdout)) == 4
    assert len(re.findall(r": iteration 1/1: solved", r.stdout)) == 4  # progress per run
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        runs = list(client[db_name]["runs"].find({}, {"status": 1, "meta.named_configs": 1, "config.seed": 1}))
    finally:
        client.close()
    assert sorted((tuple(d["meta"]["named_configs"]), d["config"]["seed"], d["status"]) for d in runs) == [
        (("smoke",), 1, "COMPLETED"), (("smoke",), 2, "COMPLETED"),
        (("smoke", "a2_no_relabeling"), 1, "COMPLETED"), (("smoke", "a2_no_relabeling"), 2, "COMPLETED")]
    table = [line for line in r.stdout.splitlines() if line.startswith("| smoke")]
    assert [line.split("|")[1:4] for line in table] == [[" smoke ", " 1, 2 ", " 2 "],
                                                         [" smoke a2_no_relabeling ", " 1, 2 ", " 2 "]]
    assert (tmp_path / "out" / "compare.md").read_text().count("| smoke") == 2
    assert (tmp_path / "out" / "compare.png").is_file()


@pytest.mark.slow
def test_a_killed_sweep_run_is_started_again_from_its_checkpoint(tmp_path):
    env = {**os.environ, "CODEIT_MONGO_URL": ""}
    runs = tmp_path / "runs"
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "codeit.cli", "sweep", "--configs", "smoke", "--seeds", "3",
                             "--set", "n_iterations=3", "--runs-dir", str(runs), "--out", str(tmp_path / "out")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, text=True)
    try:
        deadline = time.monotonic() + 600
        while not ((runs / "1").is_dir() and resumable(runs / "1")):  # its first meta-iteration checkpointed
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.2)
        pid = json.loads((runs / "1" / "run.json").read_text())["process"]["pid"]
        os.kill(pid, signal.SIGKILL)
        proc.wait(900)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    output = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "smoke seed=3: killed by signal 9; attempt 2 of 2, resuming" in output
    assert "smoke seed=3: run 2 started on" in output and "(resuming its killed attempt)" in output
    assert json.loads((runs / "1" / "run.json").read_text())["status"] == "INTERRUPTED"
    second = json.loads((runs / "2" / "run.json").read_text())
    assert second["status"] == "COMPLETED"
    assert json.loads((runs / "2" / "info.json").read_text())["resumed_from"]["run_id"] == "1"
    sweep = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [(s["status"], s["run_id"], s["attempts"]) for s in sweep] == [("COMPLETED", 2, 2)]
    row = next(line for line in output.splitlines() if line.startswith("| smoke"))
    assert row.split("|")[2:5] == [" 3 ", " 1 ", " 3 "]  # one run (the resumed one), 3 meta-iterations
