"""Run and manage a local MongoDB-compatible server (mongoeco on SQLite) for tests and local use.

``serve`` and ``start`` run under the Python >= 3.13 virtual environment that
``scripts/mongo-server`` creates (``.mongo/venv``, with ``mongoeco[wire]``); ``stop``, ``status``
and ``url`` need only the standard library, so the wrapper runs them without that environment when
it does not exist (they never install it).  Use the wrapper rather than calling this file directly.

    mongo_server.py start  [--port P] [--dir D] [--timeout S]   start in the background, wait for ping
    mongo_server.py stop   [--port P] [--dir D]                 stop the one started there (by its pid)
    mongo_server.py status [--port P] [--dir D]                 exit 0 if it runs and answers ping, else 3
    mongo_server.py url    [--port P]                           print mongodb://127.0.0.1:P
    mongo_server.py serve  [--port P] [--dir D]                 run in the foreground (what start spawns)

State lives in the instance folder D (default ``.mongo/<port>`` beside the repository root):
``mongo.pid``, ``mongo.log`` and the SQLite database ``db.sqlite3``.  The server binds 127.0.0.1
only.  The health check is the ``ping`` command, as a real MongoDB client would send it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 27017
REPO_ROOT = Path(__file__).resolve().parent.parent


def url_for(port: int) -> str:
    return f"mongodb://{HOST}:{port}"


def instance_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir).resolve()
    return REPO_ROOT / ".mongo" / str(args.port)


def ping(port: int, timeout_s: float = 1.0) -> bool:
    """True when a server on ``port`` answers MongoDB's ``ping`` command.

    Sent as one OP_MSG over a plain socket rather than with pymongo, so that ``stop`` and ``status``
    run on any Python >= 3.8 without mongoeco's environment (and never have to create it).
    """
    request_id = 1
    body = struct.pack("<I", 0) + b"\x00" + _bson({"ping": 1, "$db": "admin"})
    message = struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
            sock.sendall(message)
            header = _recv_exactly(sock, 16)
            length, _, response_to, op_code = struct.unpack("<iiii", header)
            if op_code != OP_MSG or response_to != request_id or not 21 <= length <= 1 << 24:
                return False
            reply = _recv_exactly(sock, length - 16)
    except (OSError, EOFError):
        return False
    if reply[4:5] != b"\x00":  # flag bits, then a kind-0 section: the reply document
        return False
    return _ok_field(reply[5:]) == 1


OP_MSG = 2013


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def _bson(doc: dict) -> bytes:
    """A BSON document of int32 and string fields (all ``ping`` needs)."""
    out = b""
    for key, value in doc.items():
        name = key.encode() + b"\x00"
        if isinstance(value, int):
            out += b"\x10" + name + struct.pack("<i", value)
        else:
            text = str(value).encode() + b"\x00"
            out += b"\x02" + name + struct.pack("<i", len(text)) + text
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


#: BSON element type -> size of its value, for the fixed-size types a ping reply may hold
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def _ok_field(doc: bytes) -> float | None:
    """The numeric ``ok`` field of a BSON reply document (None when absent or unreadable)."""
    pos = 4
    while pos < len(doc) and doc[pos] != 0:
        kind = doc[pos]
        end = doc.index(b"\x00", pos + 1)
        name, pos = doc[pos + 1:end], end + 1
        if name == b"ok":
            fmt = {0x01: "<d", 0x10: "<i", 0x12: "<q", 0x08: "<?"}.get(kind)
            return float(struct.unpack_from(fmt, doc, pos)[0]) if fmt else None
        if kind in _FIXED:
            pos += _FIXED[kind]
        elif kind in (0x02, 0x0D, 0x0E):  # string, code, symbol: int32 length, bytes
            pos += 4 + struct.unpack_from("<i", doc, pos)[0]
        elif kind in (0x03, 0x04):  # document, array: int32 total length
            pos += struct.unpack_from("<i", doc, pos)[0]
        elif kind == 0x05:  # binary: int32 length, subtype, bytes
            pos += 5 + struct.unpack_from("<i", doc, pos)[0]
        else:
            return None
    return None


def read_pid(folder: Path) -> int | None:
    try:
        return int((folder / "mongo.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_our_server(pid: int) -> bool:
    """Guard against a stale pid file whose pid now belongs to another process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file
    return any(part.endswith(b"mongo_server.py") for part in cmdline) and b"serve" in cmdline


def log_tail(folder: Path, lines: int = 30) -> str:
    try:
        return "\n".join((folder / "mongo.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------ commands


def cmd_serve(args: argparse.Namespace) -> int:
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    folder = instance_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "db.sqlite3"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = AsyncMongoEcoProxyServer(engine=SQLiteEngine(str(db_path)), host=HOST, port=args.port)
        address = await server.start()
        print(f"mongoeco serving {db_path} at mongodb://{address.host}:{address.port} (pid {os.getpid()})",
              flush=True)
        try:
            await stop.wait()
        finally:
            print("mongoeco: shutting down", flush=True)
            await server.close()
            print("mongoeco: stopped", flush=True)

    asyncio.run(main())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    folder = instance_dir(args)
    url = url_for(args.port)
    pid = read_pid(folder)
    if pid is not None and pid_alive(pid) and is_our_server(pid):
        if ping(args.port):
            print(f"mongo-server: already running (pid {pid}) at {url}", file=sys.stderr)
            print(url)
            return 0
        print(f"mongo-server: pid {pid} from {folder / 'mongo.pid'} runs but does not answer ping on "
              f"port {args.port}; stop it first (scripts/mongo-server stop --port {args.port})",
              file=sys.stderr)
        return 1
    if ping(args.port, timeout_s=0.5):
        print(f"mongo-server: something else already answers on {url}; choose another --port",
              file=sys.stderr)
        return 1

    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "mongo.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--port", str(args.port),
             "--dir", str(folder)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that started it; never gets its Ctrl-C
            close_fds=True,
        )
    (folder / "mongo.pid").write_text(f"{proc.pid}\n")

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"mongo-server: the server exited with status {proc.returncode} before answering "
                  f"ping. Its log ({log_path}):\n{log_tail(folder)}", file=sys.stderr)
            (folder / "mongo.pid").unlink(missing_ok=True)
            return 1
        if ping(args.port, timeout_s=0.5):
            print(f"mongo-server: started (pid {proc.pid}) at {url}; data in {folder}", file=sys.stderr)
            print(url)
            return 0
        time.sleep(0.2)
    print(f"mongo-server: no ping answer on {url} within {args.timeout:.0f}s; stopping pid {proc.pid}. "
          f"Its log ({log_path}):\n{log_tail(folder)}", file=sys.stderr)
    _terminate(proc.pid)
    (folder / "mongo.pid").unlink(missing_ok=True)
    return 1


def _terminate(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM, wait, then SIGKILL; True when the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def cmd_stop(args: argparse.Namespace) -> int:
    folder = instance_dir(args)
    pid = read_pid(folder)
    if pid is None or not pid_alive(pid):
        print(f"mongo-server: not running (no live pid in {folder / 'mongo.pid'})", file=sys.stderr)
        (folder / "mongo.pid").unlink(missing_ok=True)
        return 0
    if not is_our_server(pid):
        print(f"mongo-server: pid {pid} in {folder / 'mongo.pid'} is not a mongo_server.py process; "
              "removing the stale pid file and leaving that process alone", file=sys.stderr)
        (folder / "mongo.pid").unlink(missing_ok=True)
        return 0
    if not _terminate(pid):
        print(f"mongo-server: pid {pid} did not exit", file=sys.stderr)
        return 1
    (folder / "mongo.pid").unlink(missing_ok=True)
    print(f"mongo-server: stopped (pid {pid})", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    folder = instance_dir(args)
    pid = read_pid(folder)
    url = url_for(args.port)
    if pid is not None and pid_alive(pid) and is_our_server(pid):
        if ping(args.port):
            print(f"running (pid {pid}) at {url}; data in {folder}")
            return 0
        print(f"pid {pid} runs but {url} does not answer ping")
        return 3
    if ping(args.port, timeout_s=0.5):
        print(f"not started from {folder}, but something answers ping at {url}")
        return 0
    print(f"not running ({url})")
    return 3


def cmd_url(args: argparse.Namespace) -> int:
    print(url_for(args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mongo-server", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "url", "serve"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CODEIT_MONGO_PORT", DEFAULT_PORT)))
    parser.add_argument("--dir", default=None, help="instance folder (default: .mongo/<port>)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for ping on start")
    args = parser.parse_args(argv)
    return {"start": cmd_start, "stop": cmd_stop, "status": cmd_status, "url": cmd_url,
            "serve": cmd_serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
