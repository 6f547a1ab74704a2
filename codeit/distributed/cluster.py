"""Which Ray cluster a run uses, and the connection to it (module docstring of :mod:`codeit.distributed`).

The address comes from ``execution.ray_address`` (``--ray-address``), else ``$RAY_ADDRESS``; the
word ``local`` starts a private Ray instance on this machine, for this process only.  Without an
address, ``backend=ray`` is a :class:`~codeit.errors.UserError`: a remote cluster is reached only at
the address the user gives, and a local instance is started only when asked for.

**Loopback only.**  Ray turns ``127.0.0.1`` into the machine's outward address and its servers (GCS,
raylet, object manager, workers, runtime-env agent) listen on every interface -- unless Ray runs in
its single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray is imported): then
the node's address is 127.0.0.1 and every server binds to it.  A local instance started here is
started in that mode, without the dashboard, and checked: if ray was imported before that mode could
be set, the instance is stopped again and the run fails with one line.  A driver connecting to a
cluster on a loopback address needs the same mode (else it would look for the cluster on the outward
address); a remote address is used as given.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from codeit.config import PAPER_CONFIG
from codeit.errors import UserError

__all__ = ["INSTALL_HINT", "LOCAL", "LOOPBACK_ENV", "RaySettings", "connect", "import_ray", "is_loopback"]

_PAPER = PAPER_CONFIG["execution"]
#: ``ray_address`` that starts a private local instance (Ray's own word for it)
LOCAL = "local"
#: Ray's single-machine mode: node address 127.0.0.1, every server bound to it (read at ``import ray``)
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
INSTALL_HINT = 'backend "ray" needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")'
_LOOPBACK_NAMES = ("localhost", "ip6-localhost")


@dataclass(frozen=True)
class RaySettings:
    """The ``execution.ray_*`` settings (defaults: :data:`codeit.config.PAPER_CONFIG`).

    ``address``: a cluster (``HOST:PORT``, ``ray://...``, ``auto``) or ``local``; None: ``$RAY_ADDRESS``.
    ``actors``: how many actors (None: one per ``actor_cpus`` CPUs of the cluster, or of ``workers``
    when the run sets them).  ``actor_cpus``: CPUs each actor reserves, one sandboxed worker process
    per CPU.  ``chunk_size``: executions per Ray call.  ``retries``: how often one chunk is sent again
    after its actor or node was lost.  ``start_timeout``: seconds the work may wait without any live
    actor before the run fails.
    """

    address: str | None = _PAPER["ray_address"]
    actors: int | None = _PAPER["ray_actors"]
    actor_cpus: int = _PAPER["ray_actor_cpus"]
    chunk_size: int = _PAPER["ray_chunk_size"]
    retries: int = _PAPER["ray_retries"]
    start_timeout: float = _PAPER["ray_start_timeout"]

    @classmethod
    def from_config(cls, execution: Mapping[str, Any] | None) -> RaySettings:
        """The settings of a run config's ``execution`` section (missing keys: the paper's)."""
        execution = execution or {}
        values = {f.name: execution.get(f"ray_{f.name}", getattr(cls, f.name)) for f in fields(cls)}
        settings = cls(**values)
        if settings.actors is not None and int(settings.actors) < 1:
            raise UserError(f"execution.ray_actors must be at least 1 (or null), not {settings.actors}")
        if int(settings.actor_cpus) < 1 or int(settings.chunk_size) < 1 or int(settings.retries) < 0:
            raise UserError("execution.ray_actor_cpus and ray_chunk_size must be at least 1, ray_retries at least 0")
        return settings

    def resolved_address(self) -> str:
        """The address to use: the setting, else ``$RAY_ADDRESS``; a :class:`UserError` without one."""
        address = self.address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise UserError('backend "ray" needs a cluster: give its address (--ray-address HOST:PORT, '
                            'execution.ray_address or $RAY_ADDRESS), or "local" to start a Ray instance '
                            "on this machine")
        return str(address)


def is_loopback(address: str) -> bool:
    """Whether a cluster address names this machine's loopback interface (``127.0.0.1:6379``, ...)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(loopback: bool = False) -> Any:
    """``ray``, imported now (in loopback mode when asked and still possible); a :class:`UserError`
    saying how to install it when it is missing."""
    if loopback and "ray" not in sys.modules:
        os.environ[LOOPBACK_ENV] = "0"
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def _same_randomness() -> Iterator[None]:
    """``ray.init`` draws from Python's global random generator: put its state (and numpy's) back, so
    that a run's random draws, and so its results, do not depend on the backend."""
    state = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    try:
        yield
    finally:
        random.setstate(state)
        if numpy_state is not None:
            numpy.random.set_state(numpy_state)


def _node_address(ray: Any) -> str:
    return str(ray.util.get_node_ip_address())


@contextlib.contextmanager
def connect(settings: RaySettings, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration: to the settings' cluster, or to a local instance started
    now on 127.0.0.1 (``num_cpus``: its CPUs; default all) and stopped at the end.  An existing
    connection of this process is used as it is and left open."""
    address = settings.resolved_address()
    local = address == LOCAL
    ray = import_ray(loopback=local or is_loopback(address))
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": True, "configure_logging": False}
    if local:
        with _same_randomness():
            ray.init(address=LOCAL, num_cpus=num_cpus, include_dashboard=False, **options)
        node = _node_address(ray)
        if not ipaddress.ip_address(node).is_loopback:
            ray.shutdown()
            raise UserError(f"a local Ray instance would listen on {node}, not only on 127.0.0.1: ray was imported "
                            f"before codeit could set {LOOPBACK_ENV}=0; set it in the environment")
    else:
        try:
            with _same_randomness():
                ray.init(address=address, **options)
        except ConnectionError as err:
            raise UserError(f"cannot reach the Ray cluster at {address}: {str(err).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
