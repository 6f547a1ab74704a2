"""Shared pytest fixtures.

The service fixtures (``mongo_url``, ``mongo_db``, ``mongo_server_factory``) live in
``tests/services.py``; importing them here makes them available to every test module.
"""

import os

# torch's OpenMP threads spin while they wait for work (the default wait policy); with two xdist
# workers, their torch threads and the executors' worker processes sharing 2 cores, spinning threads
# starve everyone else (a policy test took 68 s instead of 19 s beside two other jobs).  Passive
# waiting must be chosen before torch starts OpenMP (conftest runs before any test module imports
# it); subprocesses of the tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from services import mongo_db, mongo_server_factory, mongo_url  # noqa: F401
