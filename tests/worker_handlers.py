"""A worker handler for the tests of codeit.execution.workers (never used in production).

A job is a pickled ``(command, argument)``: ``echo`` answers its argument and the setups seen so far,
``sleep`` sleeps, ``beat`` sleeps ``n`` times 0.3 s with a beat after each, ``exit`` ends the process,
``raise`` raises, ``torch`` tries to import torch.  A job of raw bytes starting ``SIZE`` is answered
with its size, unread.
"""

from __future__ import annotations

import os
import pickle
import time

from codeit.execution.workers import beat


class Handler:
    def __init__(self, config) -> None:
        self.config = config
        self.setups: list[bytes] = []

    def setup(self, data: bytes) -> None:
        self.setups.append(data)

    def run(self, item: memoryview) -> bytes:
        if item[:4] == b"SIZE":
            return pickle.dumps(len(item))
        command, argument = pickle.loads(item)
        if command == "echo":
            return pickle.dumps((argument, self.setups, os.getpid()))
        if command == "sleep":
            time.sleep(argument)
            return pickle.dumps("slept")
        if command == "beat":
            for _ in range(argument):
                time.sleep(0.3)
                beat()
            return pickle.dumps("beat")
        if command == "exit":
            os._exit(argument)
        if command == "raise":
            raise ValueError(argument)
        if command == "torch":
            try:
                import torch  # noqa: F401
            except ImportError as exc:
                return pickle.dumps(f"ImportError: {exc}")
            return pickle.dumps("imported")
        raise KeyError(command)
