"""Shared pytest fixtures.

The service fixtures (``mongo_url``, ``mongo_db``, ``mongo_server_factory``) live in
``tests/services.py``; importing them here makes them available to every test module.
"""

from services import mongo_db, mongo_server_factory, mongo_url  # noqa: F401
