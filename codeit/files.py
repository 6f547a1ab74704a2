"""Durable file writes for long runs: a kill or a crash leaves the old file or the new one, never half
of one, and what was written survives a power loss once the call returns.

Used by the replay buffer, the loop's checkpoints, the policy checkpoints, the recording spool and the
mutation baseline's chunk, score and report files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "fsync_dir", "fsync_tree"]


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any]) -> None:
    """Replace ``path`` by ``data`` (bytes, UTF-8 text, or a function writing to a binary file).

    The content goes to a temporary file beside ``path``, is flushed to disk, then renamed over
    ``path`` (atomic on POSIX); the folder entry is synced too.  On any failure the temporary file is
    removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be synced."""
    _fsync(path)


def _fsync(path: str | os.PathLike) -> None:
    """Flush one file or folder to disk, quietly: a missing path or a file system that cannot sync
    is not an error of the caller's write."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush every file under ``path``, and the folders themselves, to disk (before the tree is renamed
    into place: a checkpoint)."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)
