"""Where experiment runs are recorded: always a file record, and MongoDB (for Omniboard) when asked.

:func:`make_observers` returns the Sacred observers for a run:

* a :class:`FileRecordObserver` (Sacred's ``FileStorageObserver``) writing ``<file_root>/<id>/``:
  ``config.json``, ``run.json`` (status, result, fail trace), ``metrics.json``, ``cout.txt`` and
  the artifacts.  This record never depends on a database.
* a :class:`SafeMongoObserver` when a MongoDB is named (``mongo_url`` or ``CODEIT_MONGO_URL``):
  Sacred's ``MongoObserver`` -- the same documents, so Omniboard shows them -- made safe for a
  database that dies during a run.

Why not Sacred's observers as they are?

* ``MongoObserver`` uses pymongo's default 30 s server-selection timeout and retries the final save
  10 times (about 5 minutes at the end of a run whose database died), swallows failed heartbeats
  without a word, and crashes in its fallback when no ``failure_dir`` is set.  Its first failed
  metric write makes Sacred drop it for the rest of the run.
* ``QueuedMongoObserver`` retries a failed event forever in a background thread and
  ``completed_event`` joins that queue: a run whose database died never returns.

:class:`SafeMongoObserver` uses short timeouts (``timeout_ms``), keeps metrics, artifacts and
resources that could not be written in memory and writes them once the database answers again,
logs a warning when the connection is lost and again when it is back, and bounds the final save
(``final_attempts``).  When the database is still down at the end, the run still completes; the
Mongo entry (with the metrics and artifacts it could not write) is pickled into
``<file_root>/mongo-unsaved/`` and an error names that file and the command that uploads it later::

    python -m codeit.recording resync runs/mongo-unsaved/*.pickle [--mongo URL]

after which the run shows in Omniboard as COMPLETED (or FAILED) with all its metrics.  Until then
its Mongo document keeps status RUNNING with a stale heartbeat (Omniboard: "probably dead").  If the
database is unreachable when a run *starts*, the run fails at once with a clear error (Sacred's
rule: an observer that cannot start fails the run).

A run killed with SIGKILL sends no final event.  :class:`RecordedRun` (every run of a
:class:`RecordedExperiment`) can :meth:`~RecordedRun.flush` its metrics and output at once (the
CodeIt loop does after each iteration, before its checkpoint), the file record is written
atomically and names the run's process, and :func:`mark_interrupted` (called by ``resume_from``
through :func:`mark_resumed`, or ``python -m codeit.recording interrupted runs/7``) closes a killed
run's record.  For Omniboard, the observer tags each run with its named configs and gives the
database default metric columns and plotted metrics (:func:`omniboard_defaults`).

Database specs (``mongo_url``, ``-m``, ``CODEIT_MONGO_URL``): ``HOST:PORT:DB`` (Sacred's ``-m``
form), ``HOST:PORT``, a bare ``DB`` (on the server of ``CODEIT_MONGO_URL``, else
127.0.0.1:27017), or a ``mongodb://`` URI whose path names the database.  Without a database name
the database is ``$CODEIT_MONGO_DB`` or ``codeit``.  Any MongoDB >= 4.0 works, and so does the
local mongoeco server of ``scripts/mongo-server`` (see docs/recording.md).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import logging
import os
import pickle
import platform
import re
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver
from sacred.observers.base import RunObserver
from sacred.observers.mongo import force_bson_encodeable
from sacred.run import Run
from sacred.serializer import flatten
from sacred.stdout_capturing import flush as flush_std_streams
from sacred.utils import apply_backspaces_and_linefeeds

from codeit.errors import UserError
from codeit.files import atomic_write

__all__ = [
    "DEFAULT_DB",
    "ENV_DB",
    "ENV_URL",
    "FileRecordObserver",
    "RecordedExperiment",
    "RecordedRun",
    "SafeMongoObserver",
    "flush",
    "make_observers",
    "mark_interrupted",
    "mark_resumed",
    "omniboard_defaults",
    "parse_mongo_spec",
    "resync",
    "tag_named_configs",
]

logger = logging.getLogger(__name__)

ENV_URL = "CODEIT_MONGO_URL"
ENV_DB = "CODEIT_MONGO_DB"
DEFAULT_DB = "codeit"
DEFAULT_SERVER = "mongodb://127.0.0.1:27017"
UNSAVED_DIR = "mongo-unsaved"

_HOST_PORT_DB = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})(?::(?P<db>[A-Za-z_][A-Za-z0-9_\-]{0,62}))?$")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")


def default_db() -> str:
    return os.environ.get(ENV_DB) or DEFAULT_DB


def parse_mongo_spec(spec: str, db_name: str | None = None) -> tuple[str, str]:
    """``spec`` -> ``(uri, db_name)``; ``db_name``, when given, overrides a database in the spec.

    >>> parse_mongo_spec("127.0.0.1:27017:exp")
    ('mongodb://127.0.0.1:27017', 'exp')
    >>> parse_mongo_spec("mongodb://db.example:27018/exp?authSource=admin")
    ('mongodb://db.example:27018/exp?authSource=admin', 'exp')
    """
    uri, spec_db = _split_spec(spec)
    return uri, db_name or spec_db or default_db()


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``spec`` -> ``(uri, the database it names or None)``."""
    spec = spec.strip()
    if spec.startswith(("mongodb://", "mongodb+srv://")):
        from pymongo.uri_parser import parse_uri

        return spec, parse_uri(spec, validate=False, connect_timeout=1.0).get("database")
    m = _HOST_PORT_DB.match(spec)
    if m:
        return f"mongodb://{m['host']}:{m['port']}", m["db"]
    if _DB_NAME.match(spec):
        server = os.environ.get(ENV_URL) or DEFAULT_SERVER
        if not server.startswith(("mongodb://", "mongodb+srv://")):
            server = _split_spec(server)[0]
        return server, spec
    raise ValueError(
        f"not a MongoDB spec: {spec!r} (expected HOST:PORT:DB, HOST:PORT, DB, or a mongodb:// URI)"
    )


def _short(error: BaseException | None) -> str:
    """A connection error in one line, without pymongo's topology dump."""
    if error is None:
        return ""
    text = str(error).splitlines()[0] if str(error) else ""
    text = text.split(" (configured timeouts")[0].split(", Timeout:")[0]
    return f"{type(error).__name__}: {text[:200]}"


def redact_uri(uri: str) -> str:
    """The URI without a password, for messages and the unsaved-run files."""
    return re.sub(r"(mongodb(?:\+srv)?://)([^@/]+)@", r"\1***@", uri)


# ----------------------------------------------------------------------------------- observers


class FileRecordObserver(FileStorageObserver):
    """Sacred's FileStorageObserver, tolerant of a run id whose folder already exists, with
    ``run.json`` and ``metrics.json`` written atomically and the run's process in ``run.json``.

    When a MongoObserver runs beside it, the database hands out the run id and this observer uses
    it as the folder name; a folder of that name can already exist (an earlier database, or runs
    recorded to files alone), so the record then goes to ``<id>-1``, ``<id>-2``, ... instead of
    failing the run at its start.

    ``run.json`` gets ``process``: the pid and Sacred's capture file (the temp file its ``fd``
    capture tees the output to; set when :class:`RecordedExperiment` gives this observer its
    ``run``), so that :func:`mark_interrupted` can tell whether a RUNNING run's process is gone and
    recover the output a killed run never flushed.
    """

    run: Run | None = None
    #: one writer at a time: events come from the main thread and from Sacred's heartbeat thread,
    #: and two atomic writes of one file would share its temporary file
    _save_lock = threading.Lock()

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        run_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, _id)
        capture = self.run.capture_file if isinstance(self.run, RecordedRun) else None
        self.run_entry["process"] = {"pid": os.getpid(), "capture_file": capture}
        self.save_json(self.run_entry, "run.json")
        return run_id

    def save_json(self, obj, filename):
        """Sacred's, atomic: a kill mid-write leaves the previous file, never half of one."""
        with self._save_lock:
            atomic_write(os.path.join(self.dir, filename), json.dumps(flatten(obj), sort_keys=True, indent=2))

    def _make_run_dir(self, _id):
        if _id is None:
            return super()._make_run_dir(_id)
        os.makedirs(self.basedir, exist_ok=True)
        for suffix in [""] + [f"-{k}" for k in range(1, 1000)]:
            candidate = os.path.join(self.basedir, f"{_id}{suffix}")
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            self.dir = candidate
            return
        raise FileExistsError(f"no free run folder for id {_id} under {self.basedir}")

    def failed_event(self, fail_time, fail_trace):
        # a run can fail before this observer started (another observer failed first, e.g. an
        # unreachable database): nothing is recorded then, and Sacred must not log our failure too
        if self.run_entry is not None:
            super().failed_event(fail_time, fail_trace)


class DatabaseUnavailable(UserError, ConnectionError):
    """The database named for a run cannot be reached when the run starts."""


def _connection_errors():
    import pymongo.errors

    return (pymongo.errors.ConnectionFailure,)  # AutoReconnect, NetworkTimeout, ServerSelectionTimeout


class SafeMongoObserver(MongoObserver):
    """Sacred's MongoObserver that survives its database dying mid-run (see the module docstring).

    ``url``/``db_name``: the database; ``failure_dir`` receives the pickled Mongo entry of a run
    whose final save failed; ``file_observer`` (optional, the run's file record) is where artifacts
    are found again when their source file is gone, and is named in messages.  ``timeout_ms`` bounds
    server selection and connecting, ``socket_timeout_ms`` one operation; while the database is lost,
    writes are retried at most every ``retry_after_s`` seconds (on heartbeats), and the final save
    makes at most ``final_attempts`` attempts.  ``omniboard``: tag each run with its named configs
    and give the database Omniboard's defaults (:func:`omniboard_defaults`).  Other keyword
    arguments go to ``MongoObserver``.
    """

    def __init__(
        self,
        url: str,
        db_name: str = DEFAULT_DB,
        *,
        failure_dir: str | os.PathLike = Path("runs") / UNSAVED_DIR,
        file_observer: FileStorageObserver | None = None,
        timeout_ms: int = 3000,
        socket_timeout_ms: int = 30000,
        final_attempts: int = 3,
        retry_after_s: float = 5.0,
        omniboard: bool = True,
        **kwargs: Any,
    ):
        import pymongo

        client = pymongo.MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=socket_timeout_ms,
            appname="codeit",
        )
        super().__init__(client=client, db_name=db_name, failure_dir=os.fspath(failure_dir), **kwargs)
        self.where = f"{redact_uri(url)} (database {db_name!r})"
        self._url = url
        self._db_name = db_name
        self.file_observer = file_observer
        self.final_attempts = max(1, int(final_attempts))
        self.retry_after_s = float(retry_after_s)
        self.omniboard = bool(omniboard)
        self._lock = threading.RLock()
        self._started = False
        self._final = False  # a final event began: the heartbeat thread no longer touches the network
        self._closed = False
        self._lost_since: float | None = None
        self._retry_at = 0.0
        self._pending_metrics: dict[str, dict[str, list]] = {}
        self._pending_artifacts: list[tuple[str, str, Any, Any]] = []
        self._pending_resources: list[str] = []
        self.unsaved_path: Path | None = None

    def __repr__(self) -> str:
        return f"SafeMongoObserver({self.where})"

    # ------------------------------------------------------------------- connection bookkeeping

    def _run_id(self):
        return None if self.run_entry is None else self.run_entry.get("_id")

    def _file_record(self) -> str:
        d = getattr(self.file_observer, "dir", None)
        return f"the file record in {d}" if d else "the file record (if any)"

    def _note_lost(self, error: Exception) -> None:
        self._retry_at = time.monotonic() + self.retry_after_s
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            logger.warning(
                "Lost the connection to MongoDB at %s during run %s (%s). The run goes on; "
                "metrics, artifacts and the final status are kept and written when the database "
                "answers again; %s is unaffected.",
                self.where, self._run_id(), _short(error), self._file_record(),
            )

    def _note_ok(self) -> None:
        if self._lost_since is not None:
            logger.warning(
                "MongoDB at %s answers again (after %.0f s); run %s is being recorded there again.",
                self.where, time.monotonic() - self._lost_since, self._run_id(),
            )
            self._lost_since = None

    def _may_try(self) -> bool:
        return self._lost_since is None or time.monotonic() >= self._retry_at

    # ------------------------------------------------------------------------ pending writes

    def _queue_metrics(self, metrics_by_name) -> None:
        for name, m in metrics_by_name.items():
            slot = self._pending_metrics.setdefault(name, {"steps": [], "values": [], "timestamps": []})
            for key in ("steps", "values", "timestamps"):
                slot[key].extend(m[key])

    def _flush_metrics(self, info) -> None:
        """Write the queued metrics one name at a time (raises on a connection error)."""
        for name in list(self._pending_metrics):
            MongoObserver.log_metrics(self, {name: self._pending_metrics[name]}, info)
            del self._pending_metrics[name]

    def _artifact_source(self, name: str, filename: str) -> str | None:
        if os.path.exists(filename):
            return filename
        d = getattr(self.file_observer, "dir", None)
        if d and os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
        return None

    def _flush_artifacts(self) -> None:
        while self._pending_artifacts:
            name, filename, metadata, content_type = self._pending_artifacts[0]
            source = self._artifact_source(name, filename)
            if source is None:
                logger.warning("Artifact %r of run %s is gone from disk and was not written to MongoDB; "
                               "see %s.", name, self._run_id(), self._file_record())
            else:
                MongoObserver.artifact_event(self, name, source, metadata, content_type)
            self._pending_artifacts.pop(0)
        while self._pending_resources:
            MongoObserver.resource_event(self, self._pending_resources[0])
            self._pending_resources.pop(0)

    def _flush_all(self) -> None:
        info = self.run_entry.setdefault("info", {})
        self._flush_metrics(info)
        self._flush_artifacts()

    # --------------------------------------------------------------------------- Sacred events

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        try:
            run_id = super().started_event(ex_info, command, host_info, start_time, config, meta_info, _id)
        except _connection_errors() as e:
            raise DatabaseUnavailable(
                f"MongoDB at {self.where} is unreachable at the start of the run ({type(e).__name__}). "
                "Start it (scripts/mongo-server start), point -m / CODEIT_MONGO_URL at a running one, "
                "or record to files only."
            ) from e
        self._started = True
        if self.omniboard:
            self._omniboard_start(run_id, meta_info)
        return run_id

    def insert(self):
        """Sacred's insert, with one id per run: a new run's id is free both in the database and as
        a folder of the file record, so the console, MongoDB and ``runs/<id>/`` name the same run."""
        import pymongo.errors

        if self.overwrite or self.run_entry.get("_id") is not None or self.file_observer is None:
            return super().insert()
        root = Path(self.file_observer.basedir)
        while True:
            last = list(self.runs.find({}, {"_id": 1}).sort("_id", -1).limit(1))
            candidate = last[0]["_id"] + 1 if last and isinstance(last[0]["_id"], int) else 1
            while (root / str(candidate)).exists():
                candidate += 1
            self.run_entry["_id"] = candidate
            try:
                self.runs.insert_one(self.run_entry)
                return None
            except pymongo.errors.DuplicateKeyError:
                continue  # another run took it meanwhile

    def _omniboard_start(self, run_id, meta_info) -> None:
        """The run's named configs as its Omniboard tags, and the database's Omniboard defaults.

        The tags are set once, outside ``run_entry``: the entry is written again at every heartbeat
        and would undo tags edited in Omniboard meanwhile.
        """
        try:
            named = [str(n) for n in (meta_info or {}).get("named_configs") or []]
            if named:
                self.runs.update_one({"_id": run_id}, {"$set": {"omniboard.tags": named}})
            omniboard_defaults(self.runs.database)
        except Exception as e:  # noqa: BLE001 - conveniences for the dashboard never fail a run
            logger.warning("Could not set Omniboard tags/defaults for run %s (%s).", run_id, _short(e))

    def queued_event(self, *args, **kwargs):
        run_id = super().queued_event(*args, **kwargs)
        self._started = True
        return run_id

    def log_metrics(self, metrics_by_name, info):
        with self._lock:
            self._queue_metrics(metrics_by_name)
            if self._closed:
                self._late_update()
                return
            if self._final or not self._may_try():
                return
            try:
                self._flush_metrics(info)
            except _connection_errors() as e:
                self._note_lost(e)
            else:
                self._note_ok()

    def heartbeat_event(self, info, captured_out, beat_time, result):
        with self._lock:
            if self.run_entry is None:
                return
            self.run_entry["info"] = flatten(info)
            self.run_entry["captured_out"] = captured_out
            self.run_entry["heartbeat"] = beat_time
            self.run_entry["result"] = flatten(result)
            if self._final and not self._closed:
                return  # the final save, under way, writes these too
            if self._closed:
                self._late_update()
                return
            if not self._may_try():
                return
            try:
                self._flush_artifacts()
                self._save_entry(upsert=False)
            except _connection_errors() as e:
                self._note_lost(e)
            else:
                self._note_ok()

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        with self._lock:
            self._pending_artifacts.append((name, filename, metadata, content_type))
            if self._final or not self._may_try():
                return
            try:
                self._flush_artifacts()
            except _connection_errors() as e:
                self._note_lost(e)

    def resource_event(self, filename):
        with self._lock:
            self._pending_resources.append(filename)
            if self._final or not self._may_try():
                return
            try:
                self._flush_artifacts()
            except _connection_errors() as e:
                self._note_lost(e)

    def completed_event(self, stop_time, result):
        self._final = True
        if self.run_entry is not None:
            super().completed_event(stop_time, result)

    def interrupted_event(self, interrupt_time, status):
        self._final = True
        if self.run_entry is not None:
            super().interrupted_event(interrupt_time, status)

    def failed_event(self, fail_time, fail_trace):
        self._final = True
        if self.run_entry is not None:
            super().failed_event(fail_time, fail_trace)

    # ------------------------------------------------------------------------------ saving

    def _save_entry(self, upsert: bool) -> None:
        import pymongo.errors
        from sacred.utils import ObserverError

        try:
            self.runs.update_one({"_id": self.run_entry["_id"]}, {"$set": self.run_entry}, upsert=upsert)
        except pymongo.errors.InvalidDocument as e:
            if not upsert:
                raise ObserverError("Run contained an unserializable entry (most likely in the info)") from e
            self.run_entry = force_bson_encodeable(self.run_entry)
            logger.warning("Some entries of run %s were not BSON-serializable and were stored as strings "
                           "(most likely in its info or result).", self._run_id())
            self.runs.update_one({"_id": self.run_entry["_id"]}, {"$set": self.run_entry}, upsert=True)

    def save(self):
        """Sacred's periodic save (heartbeats, artifacts): never raises on a lost connection."""
        with self._lock:
            try:
                self._save_entry(upsert=False)
            except _connection_errors() as e:
                self._note_lost(e)

    def final_save(self, attempts):
        """Write the final entry: bounded retries, then a pickled copy and a loud message."""
        with self._lock:
            if not self._started or self.run_entry is None:
                return  # the run never got a Mongo entry (failed while starting)
            n = max(1, min(int(attempts), self.final_attempts))
            error: Exception | None = None
            for i in range(n):
                try:
                    self._flush_all()
                    self._save_entry(upsert=True)
                except _connection_errors() as e:
                    error = e
                    self._note_lost(e)
                    if i < n - 1:
                        time.sleep(1.0)
                    continue
                self._note_ok()
                self._closed = True
                return
            self._closed = True
            self.unsaved_path = self._write_unsaved()
            logger.error(
                "MongoDB at %s was unreachable when run %s ended (%s). Its MongoDB record is "
                "incomplete (status RUNNING, a stale heartbeat); %s is complete. The MongoDB entry is "
                "kept in %s; upload it when the database is back with:\n"
                "    python -m codeit.recording resync %s",
                self.where, self._run_id(), _short(error), self._file_record(),
                self.unsaved_path, self.unsaved_path,
            )

    def _late_update(self) -> None:
        """Sacred's last heartbeat can arrive after the final save (it waits only 2 s for it)."""
        if self.unsaved_path is not None:
            self._write_unsaved(self.unsaved_path)  # keep the newer output and metrics there
            return
        try:
            self._flush_all()
            self._save_entry(upsert=False)
        except Exception as e:  # noqa: BLE001 - best effort: the final status is stored
            logger.warning("The last heartbeat of run %s reached MongoDB after its final save and was "
                           "not written (%s); %s has it.", self._run_id(), _short(e), self._file_record())

    def _write_unsaved(self, path: Path | None = None) -> Path:
        if path is None:
            folder = Path(self.failure_dir)
            folder.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
            path = folder / f"{self._db_name}-run{self._run_id()}-{stamp}-{os.getpid()}.pickle"
        record = {
            "format": "codeit-mongo-unsaved-1",
            "url": redact_uri(self._url),
            "db_name": self._db_name,
            "runs_collection": self.runs.name,
            "metrics_collection": None if self.metrics is None else self.metrics.name,
            "run_entry": self.run_entry,
            "pending_metrics": self._pending_metrics,
            "pending_artifacts": [
                (name, self._artifact_source(name, filename) or filename, metadata, content_type)
                for name, filename, metadata, content_type in self._pending_artifacts
            ],
            "pending_resources": list(self._pending_resources),
        }
        atomic_write(path, lambda f: pickle.dump(record, f))
        return path


# ---------------------------------------------------------------------------- Omniboard defaults

#: the metrics a comparison of runs starts from: the solve rates of this iteration, of every program
#: so far, of the policy's programs so far and of the tasks the policy solved at some iteration, and
#: the best demonstration accuracy the policy reached (it moves before tasks are solved)
KEY_METRICS = ("solve_rate", "solve_rate_cumulative", "solve_rate_policy_only", "solve_rate_policy_ever",
               "policy_best_demo_accuracy")
#: the run table's default metric columns (Omniboard 2.16.1's ``omniboard.metric.columns``): the
#: last value of each of :data:`KEY_METRICS`
OMNIBOARD_METRIC_COLUMNS = tuple({"name": m, "metric_name": m, "extrema": "last"} for m in KEY_METRICS)
#: the metrics a run's plot selects when the browser has no selection of its own (Omniboard plots
#: all of them, so throughput in the tens of thousands flattens the solve rates); read by the page
#: script that scripts/omniboard-preload.js adds to Omniboard
OMNIBOARD_PLOT_METRICS = KEY_METRICS
#: the ``omniboard.settings`` document holding :data:`OMNIBOARD_PLOT_METRICS`; its presence also
#: means the defaults were given, so columns a user deleted in Omniboard stay deleted
OMNIBOARD_PLOT_SETTING = "codeit_plot_metrics"


def omniboard_defaults(db, metric_columns=OMNIBOARD_METRIC_COLUMNS, plot_metrics=OMNIBOARD_PLOT_METRICS) -> bool:
    """Give a database's Omniboard its defaults once: metric columns (``omniboard.metric.columns``)
    and the plot's default metrics (an ``omniboard.settings`` document).  Returns whether it did."""
    settings = db["omniboard.settings"]
    if settings.find_one({"name": OMNIBOARD_PLOT_SETTING}) is not None:
        return False
    columns = db["omniboard.metric.columns"]
    for column in metric_columns:
        if columns.find_one({"name": column["name"]}) is None:
            columns.insert_one(dict(column))
    settings.update_one({"name": OMNIBOARD_PLOT_SETTING}, {"$set": {"value": list(plot_metrics)}}, upsert=True)
    return True


def tag_named_configs(runs) -> int:
    """Tag the runs of a ``runs`` collection that have no Omniboard tags with their named configs
    (runs recorded before the observer did it); returns how many."""
    n = 0
    for doc in runs.find({"omniboard.tags": {"$exists": False}}, {"meta.named_configs": 1}):
        named = [str(x) for x in (doc.get("meta") or {}).get("named_configs") or []]
        if named:
            runs.update_one({"_id": doc["_id"]}, {"$set": {"omniboard.tags": named}})
            n += 1
    return n


# -------------------------------------------------------------------------------- the factory


def make_observers(
    file_root: str | os.PathLike | None = "runs",
    mongo_url: str | None | bool = None,
    *,
    db_name: str | None = None,
    use_env: bool = True,
    **mongo_options: Any,
) -> list[RunObserver]:
    """The observers of a run: a file record under ``file_root`` and, when asked, MongoDB.

    ``mongo_url``: a database spec (see the module docstring); ``None`` takes ``$CODEIT_MONGO_URL``
    when ``use_env`` (and records to files only when it is unset); ``False`` or ``""``: no MongoDB.
    ``db_name`` overrides the spec's database.  ``mongo_options`` go to :class:`SafeMongoObserver`
    (``timeout_ms``, ``final_attempts``, ``retry_after_s``, ``failure_dir``, ``collection_prefix``...).
    """
    observers: list[RunObserver] = []
    file_observer = None
    if file_root is not None:
        file_observer = FileRecordObserver(os.fspath(file_root))
        observers.append(file_observer)
    if mongo_url is None and use_env:
        mongo_url = os.environ.get(ENV_URL) or None
    if mongo_url:
        uri, db = parse_mongo_spec(str(mongo_url), db_name)
        mongo_options.setdefault(
            "failure_dir", Path(file_root if file_root is not None else "runs") / UNSAVED_DIR
        )
        observers.append(SafeMongoObserver(uri, db, file_observer=file_observer, **mongo_options))
    return observers


def _dash_m_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``-m`` -> ``(uri, db_name, extra observer kwargs)``: our specs, or Sacred's full ``-m`` syntax
    (``[HOST:PORT:]DB[.COLLECTION[:ID]][!PRIORITY]``)."""
    from sacred.observers.mongo import get_pattern, parse_mongo_db_arg

    try:
        uri, db = parse_mongo_spec(spec)
        return uri, db, {}
    except ValueError:
        if re.match(get_pattern(), spec) is None:
            raise ValueError(f"-m {spec!r}: expected HOST:PORT:DB, HOST:PORT, DB or a mongodb:// URI") from None
    kw = parse_mongo_db_arg(spec)
    url = kw.pop("url", None)
    uri, db = parse_mongo_spec(url or os.environ.get(ENV_URL) or DEFAULT_SERVER, kw.pop("db_name", None))
    return uri, db, kw


class RecordedExperiment(Experiment):
    """A Sacred ``Experiment`` recorded by :func:`make_observers` on every run.

    Every run gets a file record under ``file_root``; ``-m SPEC`` (``--mongo_db``: any spec of
    :func:`parse_mongo_spec`, URIs included, or Sacred's own ``-m`` syntax), or else
    ``$CODEIT_MONGO_URL``, adds a :class:`SafeMongoObserver` in place of the plain MongoObserver
    Sacred's ``-m`` would add.  ``--unobserved`` records nothing, as in Sacred.
    """

    def __init__(self, *args: Any, file_root: str | os.PathLike | None = "runs", use_env: bool = True,
                 mongo_options: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.file_root = file_root
        self.use_env = use_env
        self.mongo_options = dict(mongo_options or {})

    def _create_run(self, command_name=None, config_updates=None, named_configs=(), info=None,
                    meta_info=None, options=None):
        # take -m away from Sacred, whose parser rejects mongodb:// URIs and whose observer is unsafe
        options = dict(options or {})
        spec = options.get("--mongo_db")
        if spec:
            options["--mongo_db"] = None
        run = RecordedRun.adopt(super()._create_run(command_name, config_updates, named_configs, info,
                                                    meta_info, options))
        if spec:
            run.meta_info["options"]["--mongo_db"] = spec
        if run.unobserved:
            return run
        have_files = any(isinstance(o, FileStorageObserver) for o in run.observers)
        new = make_observers(None if have_files else self.file_root, False)
        file_obs = next((o for o in run.observers + new if isinstance(o, FileStorageObserver)), None)
        if spec:
            uri, db, extra = _dash_m_spec(spec)
            new.append(SafeMongoObserver(uri, db, file_observer=file_obs, **self._mongo_kwargs(), **extra))
        elif self.use_env and os.environ.get(ENV_URL) and not any(
            isinstance(o, MongoObserver) for o in run.observers
        ):
            uri, db = parse_mongo_spec(os.environ[ENV_URL])
            new.append(SafeMongoObserver(uri, db, file_observer=file_obs, **self._mongo_kwargs()))
        run.observers.extend(new)
        for observer in run.observers:
            if isinstance(observer, FileRecordObserver):
                observer.run = run
        return run

    def _mongo_kwargs(self) -> dict[str, Any]:
        kw = dict(self.mongo_options)
        kw.setdefault("failure_dir", Path(self.file_root if self.file_root is not None else "runs") / UNSAVED_DIR)
        return kw


# ------------------------------------------------------------------------- flushes, killed runs


class RecordedRun(Run):
    """Sacred's ``Run`` with :meth:`flush`, given to every run of a :class:`RecordedExperiment`.

    Sacred hands metrics, captured output and ``info`` to its observers only at heartbeats (every
    10 s by default), so a run killed with SIGKILL lost what came after the last one: its
    ``metrics.json`` lagged an iteration behind its checkpoint.  :meth:`flush` makes that
    heartbeat now; the loop's reporter calls it (through :func:`flush`) once an iteration is
    reported, before its checkpoint is written.  Flushes and the heartbeat thread take turns: Sacred's
    file observer rewrites ``metrics.json`` from what it has read, and two writers at once lose points.
    """

    _beat_lock: threading.Lock

    @classmethod
    def adopt(cls, run: Run) -> RecordedRun:
        """``run`` (made by Sacred, not yet started) as a RecordedRun."""
        run.__class__ = cls
        run._beat_lock = threading.Lock()
        return run

    def flush(self) -> None:
        """Write the metrics, output and info logged so far to every observer (while running)."""
        if self.status == "RUNNING" and self.observers:
            flush_std_streams()  # Python's buffered output into the capture (its tee may still lag)
            self._emit_heartbeat()

    def _emit_heartbeat(self):
        with self._beat_lock:
            super()._emit_heartbeat()

    @property
    def capture_file(self) -> str | None:
        """The temp file Sacred's ``fd`` capture tees the output to (None for ``sys``/``no``)."""
        name = getattr(getattr(self._output_file, "buffer", None), "name", None)
        return name if isinstance(name, str) and os.path.isfile(name) else None


def flush(run: Run) -> None:
    """:meth:`RecordedRun.flush` (a no-op for any other run)."""
    if isinstance(run, RecordedRun):
        run.flush()


def _utc(iso: str | None) -> datetime.datetime | None:
    """A Sacred timestamp (UTC, ISO format, no zone) as a naive datetime."""
    try:
        return datetime.datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def _process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds; Linux /proc), or None."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _process_gone(entry: Mapping[str, Any]) -> bool:
    """Whether the process of a RUNNING ``run.json`` entry has ended without a final event.

    On the run's own host: its pid is not alive, is this process, or belongs to a process that
    started after the run (a reused pid).  Elsewhere, or without a recorded pid: its heartbeat is
    older than three heartbeat intervals (and a minute).
    """
    pid = (entry.get("process") or {}).get("pid")
    start = _utc(entry.get("start_time"))
    if pid and (entry.get("host") or {}).get("hostname") == platform.node():
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        started = _process_started_at(pid)
        return bool(start and started and started > start.replace(tzinfo=datetime.UTC).timestamp() + 5)
    beat = _utc(entry.get("heartbeat")) or start
    interval = float(((entry.get("meta") or {}).get("options") or {}).get("--beat-interval") or 10.0)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return beat is not None and (now - beat).total_seconds() > max(60.0, 3 * interval)


def mark_interrupted(run_dir: str | os.PathLike, *, resumed_by: Mapping[str, Any] | None = None,
                     mongo_runs=None) -> bool:
    """Close the record of a run whose process died without a final event (SIGKILL, OOM killer).

    Its ``run.json`` would say RUNNING forever.  When its process is gone (see ``_process_gone``):
    status ``INTERRUPTED``, ``stop_time`` = its last heartbeat, ``resumed_by`` when given, and
    ``cout.txt`` completed from Sacred's capture file (the output after its last heartbeat), which
    is then deleted from the temp folder.  ``mongo_runs``: a MongoDB ``runs`` collection where the
    same run (its id, its start time, still RUNNING) is marked too.  Returns whether it marked the
    run; a run that ended, or whose process still runs, is left alone (with a warning).
    """
    run_dir = Path(run_dir)
    try:
        entry = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    if entry.get("status") != "RUNNING":
        return False
    if not _process_gone(entry):
        logger.warning("Run %s looks alive (its process or a recent heartbeat): it stays RUNNING.", run_dir)
        return False
    entry["status"] = "INTERRUPTED"
    entry["stop_time"] = entry.get("heartbeat") or entry.get("start_time")
    if resumed_by:
        entry["resumed_by"] = dict(resumed_by)
    capture = (entry.get("process") or {}).get("capture_file")
    if capture and not Path(capture).name.startswith("tmp"):
        capture = None  # not a temp file Sacred made: neither read nor deleted
    if capture and os.path.isfile(capture):
        text = Path(capture).read_bytes().decode("utf-8", "replace")
        atomic_write(run_dir / "cout.txt", apply_backspaces_and_linefeeds(text))
    atomic_write(run_dir / "run.json", json.dumps(entry, sort_keys=True, indent=2))
    if capture:
        Path(capture).unlink(missing_ok=True)
    if mongo_runs is not None:
        _mark_interrupted_in_mongo(mongo_runs, run_dir, entry)
    return True


def _mark_interrupted_in_mongo(runs, run_dir: Path, entry: Mapping[str, Any]) -> None:
    """Mark the MongoDB entry of the file record in ``run_dir`` (folder ``<id>`` or ``<id>-k``)."""
    m = re.fullmatch(r"(\d+)(?:-\d+)?", run_dir.name)
    start = _utc(entry.get("start_time"))
    if m is None or start is None:
        return
    ms = datetime.timedelta(milliseconds=1)  # MongoDB keeps milliseconds
    update = {"status": "INTERRUPTED", "stop_time": _utc(entry["stop_time"])}
    if entry.get("resumed_by"):
        update["resumed_by"] = entry["resumed_by"]
    try:
        runs.update_one({"_id": int(m[1]), "status": "RUNNING",
                         "start_time": {"$gte": start - ms, "$lte": start + ms}}, {"$set": update})
    except Exception as e:  # noqa: BLE001 - the file record is marked; the database is best effort
        logger.warning("Could not mark run %s INTERRUPTED in MongoDB (%s).", run_dir.name, _short(e))


def mark_resumed(resume_from: str | os.PathLike, run: Run) -> bool:
    """``run`` resumes the run recorded in ``resume_from`` (its folder, or a checkpoint in it): mark that
    run INTERRUPTED (:func:`mark_interrupted`) in its file record and in ``run``'s MongoDB, if any."""
    path = Path(resume_from)
    run_dir = next((d for d in (path, path.parent, path.parent.parent) if (d / "run.json").is_file()), None)
    if run_dir is None:
        return False
    record = next((o.dir for o in run.observers if isinstance(o, FileStorageObserver) and o.dir), None)
    mongo = next((o for o in run.observers if isinstance(o, MongoObserver)), None)
    try:
        return mark_interrupted(run_dir, resumed_by={"run_id": run._id, "run_dir": record},
                                mongo_runs=None if mongo is None else mongo.runs)
    except Exception as e:  # noqa: BLE001 - never fail the resumed run over the old one's record
        logger.warning("Could not mark the resumed run %s INTERRUPTED: %s", run_dir, _short(e))
        return False


# ------------------------------------------------------------------------------------ resync


def resync(path: str | os.PathLike, mongo_url: str | None = None, *, timeout_ms: int = 5000) -> dict:
    """Upload a run entry that :class:`SafeMongoObserver` could not save; returns the entry.

    ``mongo_url`` defaults to the URL stored in the file (without its password); the file is
    renamed to ``*.done`` once written.  Idempotent: metric points already in the database (same
    step and time) and artifacts already in GridFS (same name and size, not referenced yet) are
    not written again, so a second resync -- of the ``.done`` file, or of a copy taken before the
    first -- changes nothing, and a ``.done`` file keeps its name.
    """
    return _resync(Path(path), mongo_url, timeout_ms)[0]


def _resync(path: Path, mongo_url: str | None, timeout_ms: int) -> tuple[dict, dict[str, int]]:
    """:func:`resync`, also returning how many metric points and artifacts it wrote."""
    import pymongo

    with open(path, "rb") as f:
        record = pickle.load(f)
    if record.get("format") != "codeit-mongo-unsaved-1":
        raise ValueError(f"{path} is not an unsaved-run file written by codeit.recording")
    url, db_name = record["url"], record["db_name"]
    if mongo_url:
        url, spec_db = _split_spec(mongo_url)
        db_name = spec_db or db_name
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        db = client[db_name]
        runs = db[record["runs_collection"]]
        entry = copy.deepcopy(record["run_entry"])
        written = {"metric points": 0, "artifacts": 0}
        if record["metrics_collection"]:
            written["metric points"] = _upload_metrics(db[record["metrics_collection"]], entry,
                                                       record["pending_metrics"])
        written["artifacts"] = _upload_artifacts(db, runs.name, entry, record["pending_artifacts"])
        runs.update_one({"_id": entry["_id"]}, {"$set": entry}, upsert=True)
    finally:
        client.close()
    if path.suffix != ".done":
        os.replace(path, path.with_name(path.name + ".done"))
    return entry, written


def _to_ms(t: datetime.datetime) -> datetime.datetime:
    """A timestamp as MongoDB stores it (milliseconds, no time zone), for comparisons."""
    return t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=None)


def _upload_metrics(metrics, entry: dict, pending: dict[str, dict[str, list]]) -> int:
    """Append the metric points the database lacks; reference every metric document in the entry."""
    refs = entry.setdefault("info", {}).setdefault("metrics", [])
    n = 0
    for name, m in pending.items():
        query = {"run_id": entry["_id"], "name": name}
        doc = metrics.find_one(query, {"steps": 1, "timestamps": 1})
        have = set(zip(doc["steps"], map(_to_ms, doc["timestamps"]))) if doc else set()
        new = [i for i, key in enumerate(zip(m["steps"], map(_to_ms, m["timestamps"]))) if key not in have]
        doc_id = doc["_id"] if doc else None
        if new:
            result = metrics.update_one(
                query, {"$push": {k: {"$each": [m[k][i] for i in new]} for k in ("steps", "values", "timestamps")}},
                upsert=True)
            doc_id = doc_id or result.upserted_id
            n += len(new)
        if doc_id is not None and not any(r.get("name") == name for r in refs):
            refs.append({"name": name, "id": str(doc_id)})
    return n


def _upload_artifacts(db, runs_name: str, entry: dict, pending: list) -> int:
    """Put the pending artifacts in GridFS, reusing a stored copy of the same name and size."""
    import gridfs

    fs = gridfs.GridFS(db)
    artifacts = entry.setdefault("artifacts", [])
    n = 0
    for name, filename, metadata, content_type in pending:
        if not os.path.exists(filename):
            logger.warning("artifact %r of run %s: %s is gone; not uploaded", name, entry["_id"], filename)
            continue
        gridfs_name = f"artifact://{runs_name}/{entry['_id']}/{name}"
        used = {a["file_id"] for a in artifacts}
        stored = next((f._id for f in fs.find({"filename": gridfs_name})
                       if f._id not in used and f.length == os.path.getsize(filename)), None)
        if stored is None:
            with open(filename, "rb") as f:
                stored = fs.put(f, filename=gridfs_name, metadata=metadata, content_type=content_type)
            n += 1
        artifacts.append({"name": name, "file_id": stored})
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("resync", help="upload run entries that could not be saved to MongoDB")
    p.add_argument("files", nargs="+", help="*.pickle files from <runs>/mongo-unsaved/")
    p.add_argument("--mongo", "-m", default=None,
                   help="database spec (default: the one stored in each file, without a password)")
    p = sub.add_parser("omniboard", help="give a database Omniboard's defaults; tag untagged runs")
    p.add_argument("--mongo", "-m", default=None, help="database spec (default: $CODEIT_MONGO_URL)")
    p = sub.add_parser("interrupted", help="mark killed runs (RUNNING, process gone) INTERRUPTED")
    p.add_argument("run_dirs", nargs="+", help="file-record folders, e.g. runs/7")
    p.add_argument("--mongo", "-m", default=None, help="database spec: mark the runs there too")


def main(args: argparse.Namespace) -> int:
    return {"interrupted": _main_interrupted, "omniboard": _main_omniboard}.get(args.action, _main_resync)(args)


def _main_omniboard(args: argparse.Namespace) -> int:
    import pymongo

    uri, db_name = parse_mongo_spec(args.mongo or os.environ.get(ENV_URL) or DEFAULT_SERVER)
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)
    try:
        db = client[db_name]
        given = omniboard_defaults(db)
        tagged = tag_named_configs(db["runs"])
    finally:
        client.close()
    print(f"{redact_uri(uri)} (database {db_name!r}): Omniboard defaults "
          f"{'given' if given else 'already there'}; {tagged} runs tagged with their named configs")
    return 0


def _main_resync(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            entry, written = _resync(Path(name), args.mongo, 5000)
        except Exception as e:  # noqa: BLE001 - report each file and go on
            print(f"{name}: not uploaded: {type(e).__name__}: {e}", file=sys.stderr)
            status = 1
        else:
            what = ", ".join(f"{v} {k}" for k, v in written.items()) + " written"
            if not any(written.values()):
                what = "nothing new to write (already uploaded)"
            print(f"{name}: run {entry['_id']} in MongoDB (status {entry.get('status')}); {what}")
    return status


def _main_interrupted(args: argparse.Namespace) -> int:
    import pymongo

    client = runs = None
    if args.mongo:
        uri, db_name = parse_mongo_spec(args.mongo)
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)
        runs = client[db_name]["runs"]
    try:
        for name in args.run_dirs:
            marked = mark_interrupted(name, mongo_runs=runs)
            print(f"{name}: {'marked INTERRUPTED' if marked else 'left as it is (not RUNNING, or alive)'}")
    finally:
        if client is not None:
            client.close()
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m codeit.recording", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
