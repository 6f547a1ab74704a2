"""Recording runs: a real Sacred experiment, a real MongoDB-compatible server, the file record.

The server is mongoeco behind scripts/mongo-server (or whatever CODEIT_MONGO_URL names); each test
gets its own database.  The kill test starts a private server and SIGKILLs it mid-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pymongo
import pytest
from services import MONGO_SERVER, free_port
from tiny_experiment import expected_loss, make_experiment

from codeit import recording
from codeit.recording import (
    FileRecordObserver,
    RecordedExperiment,
    SafeMongoObserver,
    make_observers,
    parse_mongo_spec,
)

# generous: the first use may create .mongo/venv (pip install mongoeco), which counts as setup time
pytestmark = pytest.mark.timeout(600)

SYS_CAPTURE = {"--capture": "sys"}  # Sacred's fd capture fights pytest's own


def client_for(url: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)


def main_resync(*files: Path) -> int:
    """``python -m codeit.recording resync FILES``, in-process."""
    return recording.main(argparse.Namespace(action="resync", files=[str(f) for f in files], mongo=None))


def main_interrupted(*folders: Path, mongo: str | None = None) -> int:
    """``python -m codeit.recording interrupted FOLDERS [--mongo SPEC]``, in-process."""
    return recording.main(argparse.Namespace(action="interrupted", run_dirs=[str(f) for f in folders],
                                             mongo=mongo))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name[0].isdigit())


# ---------------------------------------------------------------------------- no server needed


def test_parse_mongo_spec_forms(monkeypatch):
    monkeypatch.delenv("CODEIT_MONGO_URL", raising=False)
    monkeypatch.delenv("CODEIT_MONGO_DB", raising=False)
    assert parse_mongo_spec("127.0.0.1:27017:exp") == ("mongodb://127.0.0.1:27017", "exp")
    assert parse_mongo_spec("db.example.org:27018") == ("mongodb://db.example.org:27018", "codeit")
    assert parse_mongo_spec("exp") == ("mongodb://127.0.0.1:27017", "exp")
    uri = "mongodb://user:secret@db.example.org:27018/exp?authSource=admin"
    assert parse_mongo_spec(uri) == (uri, "exp")
    assert parse_mongo_spec("mongodb://h:1", "other") == ("mongodb://h:1", "other")
    monkeypatch.setenv("CODEIT_MONGO_URL", "mongodb://10.1.2.3:4000")
    monkeypatch.setenv("CODEIT_MONGO_DB", "mine")
    assert parse_mongo_spec("exp") == ("mongodb://10.1.2.3:4000", "exp")
    assert parse_mongo_spec("mongodb://h:1") == ("mongodb://h:1", "mine")
    with pytest.raises(ValueError, match="not a MongoDB spec"):
        parse_mongo_spec("a:b:c:d")
    assert "secret" not in recording.redact_uri(uri)


def test_make_observers_env_and_opt_out(monkeypatch, tmp_path):
    monkeypatch.delenv("CODEIT_MONGO_URL", raising=False)
    (only_files,) = make_observers(tmp_path)
    assert isinstance(only_files, FileRecordObserver)

    monkeypatch.setenv("CODEIT_MONGO_URL", "mongodb://127.0.0.1:1")  # nothing listens; no I/O yet
    observers = make_observers(tmp_path)
    assert [type(o) for o in observers] == [FileRecordObserver, SafeMongoObserver]
    mongo = observers[1]
    assert mongo.where == "mongodb://127.0.0.1:1 (database 'codeit')"
    assert Path(mongo.failure_dir) == tmp_path / "mongo-unsaved"
    assert mongo.file_observer is observers[0]
    assert len(make_observers(tmp_path, False)) == 1
    assert len(make_observers(tmp_path, use_env=False)) == 1
    assert make_observers(None, "h:1:x", db_name="y")[0]._db_name == "y"


def test_file_record_tolerates_an_existing_run_folder(tmp_path):
    obs = FileRecordObserver(str(tmp_path))
    (tmp_path / "1").mkdir()
    obs._make_run_dir(1)
    assert Path(obs.dir) == tmp_path / "1-1"
    obs._make_run_dir(None)
    assert Path(obs.dir) == tmp_path / "2"


# -------------------------------------------------------------------------------- with a server


@pytest.mark.mongo
def test_completed_run_is_recorded(mongo_db, tmp_path):
    url, db_name = mongo_db
    ex = make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name))
    run = ex.run(named_configs=["small"], options=SYS_CAPTURE)
    assert run.status == "COMPLETED"

    db = client_for(url)[db_name]
    doc = db.runs.find_one({"_id": run._id})
    assert doc["status"] == "COMPLETED"
    assert doc["config"]["lr"] == 0.5 and doc["config"]["steps"] == 4 and doc["config"]["width"] == 4
    assert doc["meta"]["named_configs"] == ["small"]
    assert doc["omniboard"]["tags"] == ["small"]  # Omniboard's Tags column
    assert doc["result"] == pytest.approx(expected_loss(0.5, 3))
    assert "step 3: loss" in doc["captured_out"]
    metrics = {m["name"]: m for m in db.metrics.find({"run_id": run._id})}
    assert set(metrics) == {"loss", "accuracy"}
    assert metrics["loss"]["steps"] == [0, 1, 2, 3]
    assert metrics["loss"]["values"] == [expected_loss(0.5, s) for s in range(4)]
    assert {m["name"] for m in doc["info"]["metrics"]} == {"loss", "accuracy"}
    (artifact,) = doc["artifacts"]
    assert artifact["name"] == "report.txt"
    import gridfs

    content = gridfs.GridFS(db).get(artifact["file_id"]).read().decode()
    assert content.startswith("width=4 lr=0.5")

    (folder,) = run_dirs(tmp_path / "runs")
    assert folder.name == str(run._id)
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((folder / "config.json").read_text())["width"] == 4
    assert json.loads((folder / "metrics.json").read_text())["loss"]["steps"] == [0, 1, 2, 3]
    assert (folder / "report.txt").read_text().startswith("width=4")


@pytest.mark.mongo
def test_failed_run_is_recorded_with_its_traceback(mongo_db, tmp_path):
    url, db_name = mongo_db

    def fail(step, _run):
        if step == 1:
            raise ValueError("the tiny experiment failed on purpose")

    ex = make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name), hook=fail)
    with pytest.raises(ValueError, match="on purpose"):
        ex.run(named_configs=["large"], options=SYS_CAPTURE)

    db = client_for(url)[db_name]
    (doc,) = list(db.runs.find())
    assert doc["status"] == "FAILED"
    trace = "".join(doc["fail_trace"])
    assert "ValueError: the tiny experiment failed on purpose" in trace
    assert doc["config"]["width"] == 32
    (folder,) = run_dirs(tmp_path / "runs")
    run_json = json.loads((folder / "run.json").read_text())
    assert run_json["status"] == "FAILED"
    assert "on purpose" in "".join(run_json["fail_trace"])


@pytest.mark.mongo
def test_dash_m_on_a_recorded_experiment_uses_the_safe_observer(mongo_db, tmp_path, monkeypatch):
    url, db_name = mongo_db
    monkeypatch.delenv("CODEIT_MONGO_URL", raising=False)
    host_port = url.removeprefix("mongodb://").rstrip("/")
    ex = make_experiment(experiment_class=RecordedExperiment, file_root=tmp_path / "runs")
    run = ex.run(options={**SYS_CAPTURE, "--mongo_db": f"{host_port}:{db_name}"})
    kinds = [type(o).__name__ for o in run.observers]
    assert sorted(kinds) == ["FileRecordObserver", "SafeMongoObserver"]
    assert client_for(url)[db_name].runs.find_one({"_id": run._id})["status"] == "COMPLETED"
    assert (tmp_path / "runs" / str(run._id) / "run.json").exists()

    monkeypatch.setenv("CODEIT_MONGO_URL", url)
    monkeypatch.setenv("CODEIT_MONGO_DB", db_name)
    run2 = make_experiment(experiment_class=RecordedExperiment, file_root=tmp_path / "runs").run(
        options=SYS_CAPTURE)
    assert run2._id == run._id + 1

    # -m also takes a mongodb:// URI (Sacred's own -m parser does not)
    monkeypatch.delenv("CODEIT_MONGO_URL")
    run3 = make_experiment(experiment_class=RecordedExperiment, file_root=tmp_path / "runs").run(
        options={**SYS_CAPTURE, "--mongo_db": f"{url.rstrip('/')}/{db_name}"})
    assert run3.meta_info["options"]["--mongo_db"].endswith(db_name)
    assert client_for(url)[db_name].runs.count_documents({"status": "COMPLETED"}) == 3


@pytest.mark.mongo
def test_omniboard_defaults_are_given_once_and_tags_are_not_undone(mongo_db, tmp_path):
    url, db_name = mongo_db
    db = client_for(url)[db_name]

    def edit_tags(step, _run):
        if step == 1:  # as Omniboard's tag editor does, while heartbeats rewrite the run's entry
            db.runs.update_one({"_id": _run._id}, {"$set": {"omniboard.tags": ["small", "mine"]}})
            time.sleep(0.6)

    run = make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name), hook=edit_tags).run(
        named_configs=["small"], options={**SYS_CAPTURE, "--beat-interval": "0.2"})
    assert db.runs.find_one({"_id": run._id})["omniboard"]["tags"] == ["small", "mine"]
    columns = [(c["name"], c["metric_name"], c["extrema"]) for c in db["omniboard.metric.columns"].find()]
    assert columns == [(m, m, "last") for m in ("solve_rate", "solve_rate_cumulative", "solve_rate_policy_only",
                                                "solve_rate_policy_ever", "policy_best_demo_accuracy")]
    setting = db["omniboard.settings"].find_one({"name": recording.OMNIBOARD_PLOT_SETTING})
    assert setting["value"] == list(recording.OMNIBOARD_PLOT_METRICS)

    # once: a column the user deleted stays deleted
    db["omniboard.metric.columns"].delete_one({"name": "solve_rate"})
    assert not recording.omniboard_defaults(db)
    make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name)).run(options=SYS_CAPTURE)
    assert db["omniboard.metric.columns"].count_documents({}) == len(recording.OMNIBOARD_METRIC_COLUMNS) - 1

    # runs recorded without tags get them from the command line (its defaults are already given)
    untagged = make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name, omniboard=False)).run(
        named_configs=["large"], options=SYS_CAPTURE)
    assert "omniboard" not in db.runs.find_one({"_id": untagged._id})
    args = argparse.Namespace(action="omniboard", mongo=f"{url.rstrip('/')}/{db_name}")
    assert recording.main(args) == 0
    assert db.runs.find_one({"_id": untagged._id})["omniboard"]["tags"] == ["large"]
    assert db.runs.find_one({"_id": run._id})["omniboard"]["tags"] == ["small", "mine"]
    assert db["omniboard.metric.columns"].count_documents({}) == len(recording.OMNIBOARD_METRIC_COLUMNS) - 1


def test_unreachable_database_fails_the_start_quickly(tmp_path):
    from services import free_port

    spec = f"127.0.0.1:{free_port()}:nothing"
    observers = make_observers(tmp_path / "runs", spec, timeout_ms=500)
    ex = make_experiment(observers)
    with pytest.raises(ConnectionError, match="unreachable at the start of the run"):
        ex.run(options=SYS_CAPTURE)
    # quickly: the observer gives up after its own short timeout, not pymongo's default 30 s
    (mongo,) = [o for o in observers if isinstance(o, SafeMongoObserver)]
    assert mongo.runs.database.client.options.server_selection_timeout == 0.5


@pytest.mark.slow
@pytest.mark.mongo
def test_server_killed_mid_run(mongo_server_factory, tmp_path, caplog):
    """The run completes, its file record is complete, the loss is announced, and resync repairs it."""
    server = mongo_server_factory()
    db_name = "killed"
    seen_before_kill: dict = {}

    def kill_after_step_2(step, _run):
        if step != 2:
            return
        db = client_for(server.url)[db_name]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # a heartbeat (every 0.3 s) writes steps 0..2 to MongoDB
            loss = db.metrics.find_one({"run_id": _run._id, "name": "loss"})
            if loss and len(loss["steps"]) >= 3:
                break
            time.sleep(0.1)
        seen_before_kill["doc"] = db.runs.find_one({"_id": _run._id})
        seen_before_kill["loss"] = loss
        db.client.close()
        server.kill()
        time.sleep(1.0)  # heartbeats while the database is gone

    observers = make_observers(tmp_path / "runs", server.url, db_name=db_name, timeout_ms=500,
                               final_attempts=2, retry_after_s=0.2)
    ex = make_experiment(observers, hook=kill_after_step_2)
    caplog.set_level(logging.WARNING, logger="codeit.recording")
    run = ex.run(config_updates={"steps": 6, "pause": 0.05},  # a run that hangs fails by the test's timeout
                 options={**SYS_CAPTURE, "--beat-interval": "0.3"})

    # the run itself: completed, without hanging on the dead database
    assert run.status == "COMPLETED"
    assert run.result == pytest.approx(expected_loss(0.1, 5))
    assert seen_before_kill["doc"]["status"] == "RUNNING"
    assert seen_before_kill["loss"]["steps"][:3] == [0, 1, 2]

    # its file record is complete
    (folder,) = run_dirs(tmp_path / "runs")
    assert folder.name == str(run._id)
    run_json = json.loads((folder / "run.json").read_text())
    assert run_json["status"] == "COMPLETED"
    assert run_json["result"] == pytest.approx(expected_loss(0.1, 5))
    file_metrics = json.loads((folder / "metrics.json").read_text())
    assert file_metrics["loss"]["steps"] == list(range(6))
    assert (folder / "report.txt").exists()
    assert "step 5: loss" in (folder / "cout.txt").read_text()

    # a clear message: the connection was lost, and where the unsaved entry went
    messages = [r.getMessage() for r in caplog.records if r.name == "codeit.recording"]
    assert any("Lost the connection to MongoDB" in m for m in messages), messages
    final = [m for m in messages if "was unreachable when run" in m]
    assert final and "python -m codeit.recording resync" in final[0], messages
    mongo = observers[1]
    assert mongo.unsaved_path is not None and mongo.unsaved_path.exists()
    assert str(mongo.unsaved_path) in final[0]
    with open(mongo.unsaved_path, "rb") as f:
        record = pickle.load(f)
    assert record["run_entry"]["status"] == "COMPLETED"

    # the database comes back (same data folder and port): resync marks the run completed there
    restarted = mongo_server_factory(port=server.port, folder=server.folder)
    db = client_for(restarted.url)[db_name]
    assert db.runs.find_one({"_id": run._id})["status"] == "RUNNING"
    spare = mongo.unsaved_path.with_name("spare-copy.pickle")  # as if a resync died before its rename
    spare.write_bytes(mongo.unsaved_path.read_bytes())
    entry = recording.resync(mongo.unsaved_path)
    assert entry["status"] == "COMPLETED"
    assert not mongo.unsaved_path.exists()
    done = mongo.unsaved_path.with_name(mongo.unsaved_path.name + ".done")
    assert done.exists()

    def uploaded():
        doc = db.runs.find_one({"_id": run._id})
        metrics = {m["name"]: m for m in db.metrics.find({"run_id": run._id})}
        return doc, metrics, db.fs.files.count_documents({})

    doc, metrics, n_files = uploaded()
    assert doc["status"] == "COMPLETED"
    assert "step 5: loss" in doc["captured_out"]
    assert metrics["loss"]["steps"] == list(range(6))
    assert metrics["loss"]["values"] == [expected_loss(0.1, s) for s in range(6)]
    assert [a["name"] for a in doc["artifacts"]] == ["report.txt"]
    assert {m["name"] for m in doc["info"]["metrics"]} == {"loss", "accuracy"}

    # resync is idempotent: the done file again (`resync runs/mongo-unsaved/*`), then the copy
    assert main_resync(done) == 0
    assert not done.with_name(done.name + ".done").exists() and done.exists()
    assert main_resync(spare) == 0
    assert uploaded() == (doc, metrics, n_files)


@pytest.mark.slow
@pytest.mark.mongo
def test_connection_lost_and_back_within_the_run(mongo_server_factory, tmp_path, caplog):
    """A database that is back before the run ends gets the whole run, and the log says so."""
    server = mongo_server_factory()
    db_name = "blip"

    def blip(step, _run):
        if step == 1:
            time.sleep(0.5)
            server.kill()
            time.sleep(0.8)
            server.start()
            time.sleep(0.8)

    observers = make_observers(tmp_path / "runs", server.url, db_name=db_name, timeout_ms=500,
                               final_attempts=2, retry_after_s=0.2)
    caplog.set_level(logging.WARNING, logger="codeit.recording")
    run = make_experiment(observers, hook=blip).run(
        config_updates={"steps": 4}, options={**SYS_CAPTURE, "--beat-interval": "0.3"})
    assert run.status == "COMPLETED"
    messages = [r.getMessage() for r in caplog.records if r.name == "codeit.recording"]
    assert any("Lost the connection" in m for m in messages), messages
    assert any("answers again" in m for m in messages), messages
    assert observers[1].unsaved_path is None
    db = client_for(server.url)[db_name]
    doc = db.runs.find_one({"_id": run._id})
    assert doc["status"] == "COMPLETED"
    assert db.metrics.find_one({"run_id": run._id, "name": "loss"})["steps"] == [0, 1, 2, 3]


KILLED_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
from tiny_experiment import make_experiment
from codeit.recording import RecordedExperiment, flush

def hook(step, run):
    if step == 2:
        flush(run)
        print("flushed", flush=True)
        time.sleep(600)

ex = make_experiment(experiment_class=RecordedExperiment, file_root={root!r}, use_env=False, hook=hook)
ex.run(options={{"--mongo_db": {mongo!r}, "--beat-interval": "600"}})
"""


@pytest.mark.mongo
def test_killed_run_flushed_then_marked_interrupted(mongo_db, tmp_path):
    """flush() writes metrics to every observer at once; a SIGKILLed run is then closed in both records."""
    url, db_name = mongo_db
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), root=str(tmp_path / "runs"),
                               mongo=f"{url.rstrip('/')}/{db_name}")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        for line in proc.stdout:  # the run's own output, tee'd by Sacred's fd capture
            if line.strip() == "flushed":
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (folder,) = run_dirs(tmp_path / "runs")
    db = client_for(url)[db_name]
    doc = db.runs.find_one({"_id": int(folder.name)})
    assert doc["status"] == "RUNNING"
    # no heartbeat came (-b 600): flush() wrote steps 0..2 to both records
    assert db.metrics.find_one({"run_id": doc["_id"], "name": "loss"})["steps"] == [0, 1, 2]
    assert json.loads((folder / "metrics.json").read_text())["loss"]["steps"] == [0, 1, 2]
    run_json = json.loads((folder / "run.json").read_text())
    capture = Path(run_json["process"]["capture_file"])
    assert capture.parent == tmp_path
    while b"flushed" not in capture.read_bytes():  # Sacred's tee process writes it a moment later
        time.sleep(0.05)
    assert "flushed" not in (folder / "cout.txt").read_text()  # printed after the flush

    assert main_interrupted(folder, mongo=f"{url.rstrip('/')}/{db_name}") == 0
    run_json = json.loads((folder / "run.json").read_text())
    assert run_json["status"] == "INTERRUPTED"
    assert run_json["stop_time"] == run_json["heartbeat"]
    assert "flushed" in (folder / "cout.txt").read_text()  # recovered from the capture file
    assert not capture.exists()
    doc = db.runs.find_one({"_id": doc["_id"]})
    assert doc["status"] == "INTERRUPTED"
    assert doc["stop_time"].isoformat(timespec="milliseconds") == run_json["stop_time"][:23]
    # a second time changes nothing
    assert not recording.mark_interrupted(folder, mongo_runs=db.runs)


# ------------------------------------------------------------------------ scripts/mongo-server


def mongo_server_script(command: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(MONGO_SERVER), command, *args], check=False, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.mongo
def test_mongo_server_stop_and_status_never_install(mongo_url, tmp_path):
    """stop and status work without mongoeco's environment, and never create it (a pip install)."""
    env = {**os.environ, "CODEIT_MONGO_VENV": str(tmp_path / "no-venv")}
    where = ["--port", str(free_port()), "--dir", str(tmp_path / "instance")]
    stopped = mongo_server_script("stop", *where, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "not running" in stopped.stderr
    assert not (tmp_path / "no-venv").exists(), "stop installed mongoeco"
    status = mongo_server_script("status", *where, env=env)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "not running" in status.stdout
    # a server that runs answers status's ping, sent without pymongo from this environment too
    port = urllib.parse.urlsplit(mongo_url).port
    answering = mongo_server_script("status", "--port", str(port), "--dir", str(tmp_path / "other"), env=env)
    assert answering.returncode == 0, answering.stdout + answering.stderr
    assert "answers ping" in answering.stdout
    assert not (tmp_path / "no-venv").exists()
