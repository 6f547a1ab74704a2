"""Recorded runs read from MongoDB (Sacred's ``MongoObserver`` layout), as :class:`RunRecord`\\ s.

The ``runs`` collection holds one document per run (``_id``, ``status``, ``config``, ``meta`` with
the named configs and config updates); the ``metrics`` collection one document per run and metric
(``run_id``, ``name``, ``steps``, ``values``).  The records equal those read from the same runs'
file records, so a comparison does not depend on where the runs were recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from codeit.compare.records import RunRecord, flat_updates, metric_series, resume_links
from codeit.errors import UserError
from codeit.recording import parse_mongo_spec

__all__ = ["read_mongo_runs"]

#: what is read of a run document (not its captured output, artifacts or host)
RUN_FIELDS = {"_id": 1, "status": 1, "config": 1, "meta": 1, "resumed_by": 1, "info": 1}


def _without_password(uri: str) -> str:
    return re.sub(r"(mongodb(?:\+srv)?://)([^@/]+)@", r"\1***@", uri)


def read_mongo_runs(spec: str, keep_id: Callable[[int], bool] | None = None, *, timeout_ms: int = 5000
                    ) -> tuple[list[RunRecord], list[str]]:
    """The runs recorded in the database ``spec`` names (any spec of
    :func:`codeit.recording.parse_mongo_spec`); ``keep_id`` chooses by run id.

    Returns the runs (by id) and a one-line note for each run left out (no metrics yet).  Raises
    :class:`~codeit.errors.UserError` when the spec is malformed or the database does not answer.
    """
    import pymongo
    import pymongo.errors

    try:
        uri, db_name = parse_mongo_spec(spec)
    except ValueError as err:
        raise UserError(str(err)) from None
    where = f"MongoDB at {_without_password(uri)} (database {db_name!r})"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        db = client[db_name]
        docs = [d for d in db["runs"].find({}, RUN_FIELDS)
                if keep_id is None or not isinstance(d.get("_id"), int) or keep_id(d["_id"])]
        metrics: dict[object, dict[str, tuple]] = {d["_id"]: {} for d in docs}
        if docs:
            for m in db["metrics"].find({"run_id": {"$in": list(metrics)}},
                                        {"run_id": 1, "name": 1, "steps": 1, "values": 1}):
                points = metric_series(m.get("steps") or (), m.get("values") or ())
                if m.get("run_id") in metrics and points:
                    metrics[m["run_id"]][str(m.get("name"))] = points
    except pymongo.errors.PyMongoError as err:
        first = str(err).splitlines()[0].split(", Timeout:")[0][:200] if str(err) else ""
        raise UserError(f"{where} cannot be read: {type(err).__name__}: {first}") from None
    finally:
        client.close()
    runs, notes = [], []
    for doc in sorted(docs, key=lambda d: (0, d["_id"], "") if isinstance(d["_id"], int) else (1, 0, str(d["_id"]))):
        status = str(doc.get("status", "UNKNOWN"))
        if not metrics[doc["_id"]]:
            notes.append(f"left out run {doc['_id']} of {where}: no metrics yet (status {status})")
            continue
        meta = doc.get("meta") or {}
        runs.append(RunRecord(id=str(doc["_id"]), status=status,
                              named_configs=tuple(str(n) for n in meta.get("named_configs") or ()),
                              config=doc.get("config") or {}, metrics=metrics[doc["_id"]],
                              config_updates=flat_updates(meta.get("config_updates")),
                              source=f"{_without_password(uri)}/{db_name} run {doc['_id']}",
                              **resume_links(doc, doc.get("info"))))
    return runs, notes
