"""External services for the tests: the MongoDB-compatible server, Omniboard, headless Chromium.

The pytest fixtures (registered in ``tests/conftest.py``):

* ``mongo_url`` (session): ``$CODEIT_MONGO_URL`` when set (CI starts the server with
  ``scripts/mongo-server start`` and exports it), else a server this session starts with
  ``scripts/mongo-server`` on a free port in a temporary folder and stops at the end.
* ``mongo_db``: ``(url, db_name)`` with a database name unique to the test (inserts slow down as a
  mongoeco collection grows, so every test starts empty); the database is dropped afterwards.
* ``mongo_server_factory``: starts extra, private server instances (a test that kills its
  server must not kill the shared one); stops what is left at the end of the test.

What a service needs and the machine lacks (Python >= 3.13 for mongoeco, node and npm, Chromium,
or an install that failed) skips the tests that need it, with the reason -- unless the services
are required (``$CODEIT_REQUIRE_SERVICES``, which ``scripts/ci-services start`` exports, or
``$CI``): then it is a failure.  What is missing but installable is installed on first use, once:
mongoeco into ``.mongo/venv`` (~180 MB) and Omniboard into ``.omniboard/`` (~530 MB, npm), each
announced by a warning in pytest's summary; ``CODEIT_TEST_INSTALL=0`` skips those tests instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MONGO_SERVER = REPO / "scripts" / "mongo-server"
OMNIBOARD = REPO / "scripts" / "omniboard"
PAGE_SCREENSHOT = REPO / "scripts" / "page-screenshot.js"
NO_PYTHON_EXIT = 4  # scripts/mongo-server's exit status when no Python >= 3.13 exists
# creating .mongo/venv the first time installs mongoeco from PyPI; npm installs Omniboard
INSTALL_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def services_required() -> bool:
    """True under CI (.ci/run, through scripts/ci-services), where a missing service is a failure."""
    return bool(os.environ.get("CODEIT_REQUIRE_SERVICES") or os.environ.get("CI"))


def unavailable(reason: str):
    """Skip on a developer's machine; fail where the services are required (CI)."""
    if services_required():
        pytest.fail(f"{reason} (the services are required here: CODEIT_REQUIRE_SERVICES or CI is set; "
                    "scripts/ci-services start provides them)", pytrace=False)
    pytest.skip(reason)


def ensure_installed(script: Path, what: str) -> None:
    """Install what ``script`` needs (``script install``) unless it is there; announce it."""
    r = subprocess.run([str(script), "installed"], check=False, capture_output=True, timeout=60)
    if r.returncode == 0:
        return
    if os.environ.get("CODEIT_TEST_INSTALL", "1") == "0":
        unavailable(f"{what} is not installed and CODEIT_TEST_INSTALL=0 forbids installing it "
                    f"({script.name} install)")
    warnings.warn(f"the tests installed {what} (once; `{script.relative_to(REPO)} install`; "
                  "CODEIT_TEST_INSTALL=0 skips instead)", stacklevel=2)
    r = subprocess.run([str(script), "install"], check=False, capture_output=True, text=True,
                       timeout=INSTALL_TIMEOUT_S)
    if r.returncode == NO_PYTHON_EXIT:
        unavailable(f"no Python >= 3.13 for mongoeco: {r.stderr.strip()}")
    if r.returncode != 0:
        unavailable(f"installing {what} failed ({r.returncode}): {r.stderr.strip()[-500:]}")


MONGOECO = "mongoeco into .mongo/venv (~180 MB)"
OMNIBOARD_NPM = "Omniboard into .omniboard/ (~530 MB, npm)"


def mongo_python() -> str | None:
    """The Python >= 3.13 that scripts/mongo-server would use, or None."""
    r = subprocess.run([str(MONGO_SERVER), "python"], check=False, capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else None


def ping(url: str, timeout_ms: int = 2000) -> bool:
    import pymongo
    import pymongo.errors

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        return bool(client.admin.command("ping").get("ok"))
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


class MongoServer:
    """One mongoeco server instance run through scripts/mongo-server (port, folder, pid file)."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(MONGO_SERVER), command, "--port", str(self.port), "--dir", str(self.folder)],
            check=False, capture_output=True, text=True, timeout=timeout,
        )

    def start(self) -> MongoServer:
        ensure_installed(MONGO_SERVER, MONGOECO)
        r = self._script("start", INSTALL_TIMEOUT_S)
        if r.returncode == NO_PYTHON_EXIT:
            unavailable(f"no Python >= 3.13 for mongoeco: {r.stderr.strip()}")
        if r.returncode != 0:
            raise RuntimeError(f"scripts/mongo-server start failed ({r.returncode}):\n{r.stderr}")
        assert r.stdout.strip() == self.url, r.stdout
        return self

    @property
    def pid(self) -> int | None:
        try:
            return int((self.folder / "mongo.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL, as if the machine lost the database: no clean shutdown."""
        pid = self.pid
        assert pid is not None, "no pid file: not started"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # let the closed port refuse connections before the caller goes on
        while time.monotonic() < deadline and ping(self.url, 200):
            time.sleep(0.05)

    def stop(self) -> None:
        r = self._script("stop", 60)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/mongo-server stop failed:\n{r.stderr}")


def drop_database(url: str, db_name: str) -> None:
    import pymongo
    import pymongo.errors

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        with contextlib.suppress(pymongo.errors.PyMongoError):  # cleanup only: a dead server is fine
            client.drop_database(db_name)
    finally:
        client.close()


def unique_db_name(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"t_{name}_{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------ Omniboard


class Omniboard:
    """Omniboard started through scripts/omniboard on a free port, against one database."""

    def __init__(self, mongo_uri_with_db: str, port: int | None = None):
        self.mongo = mongo_uri_with_db
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}/sacred"
        self.api = f"{self.base}/api/v1"

    def start(self) -> Omniboard:
        if shutil.which("node") is None or shutil.which("npm") is None:
            unavailable("node and npm are needed for Omniboard (Debian: apt-get install -y nodejs npm)")
        ensure_installed(OMNIBOARD, OMNIBOARD_NPM)
        r = subprocess.run([str(OMNIBOARD), "start", "--port", str(self.port), "--mongo", self.mongo],
                           check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/omniboard start failed ({r.returncode}):\n{r.stderr}")
        assert r.stdout.strip() == self.base, r.stdout
        return self

    def stop(self) -> None:
        subprocess.run([str(OMNIBOARD), "stop", "--port", str(self.port)], check=False,
                       capture_output=True, text=True, timeout=60)

    def get(self, path: str, **query) -> object:
        params = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in query.items()}
        url = f"{self.api}/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read().decode())

    def post(self, path: str, document: dict) -> object:
        request = urllib.request.Request(f"{self.api}/{path}", data=json.dumps(document).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read().decode())


# ------------------------------------------------------------------------------------- Chromium


def chromium_path() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def node_websocket_flags() -> list[str]:
    """Node 22+ has a WebSocket client built in; Node 20 needs a flag."""
    r = subprocess.run(["node", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
                       check=False, capture_output=True, timeout=30)
    return [] if r.returncode == 0 else ["--experimental-websocket"]


def screenshot(url: str, out: Path, steps: list[tuple[str, str]], size: str = "1600x1000",
               timeout_s: int = 30) -> subprocess.CompletedProcess:
    """Run scripts/page-screenshot.js; ``steps``: ("wait"|"click"|"eval"|"sleep", value) pairs."""
    chromium = chromium_path()
    if chromium is None:
        unavailable("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    args = ["node", *node_websocket_flags(), str(PAGE_SCREENSHOT), url, str(out), "--size", size,
            "--timeout", str(timeout_s), "--chromium", chromium]
    for kind, value in steps:
        args += [f"--{kind}", value]
    return subprocess.run(args, check=False, capture_output=True, text=True,
                          timeout=timeout_s * (len(steps) + 3))


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory):
    env = os.environ.get("CODEIT_MONGO_URL")
    if env:
        if not ping(env, 5000):
            pytest.fail(f"CODEIT_MONGO_URL={env} does not answer ping", pytrace=False)
        yield env
        return
    if mongo_python() is None:
        unavailable("no Python >= 3.13 for the mongoeco server (scripts/mongo-server python) and no "
                    "CODEIT_MONGO_URL")
    server = MongoServer(tmp_path_factory.mktemp("mongo")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def mongo_db(mongo_url, request):
    db_name = unique_db_name(request)
    yield mongo_url, db_name
    drop_database(mongo_url, db_name)


@pytest.fixture
def mongo_server_factory(tmp_path_factory):
    servers: list[MongoServer] = []

    def start(port: int | None = None, folder: Path | None = None) -> MongoServer:
        if mongo_python() is None:
            unavailable("no Python >= 3.13 for the mongoeco server (scripts/mongo-server python)")
        server = MongoServer(folder or tmp_path_factory.mktemp("mongo-private"), port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
