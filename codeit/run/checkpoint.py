"""Checkpoints of a run: ``<work dir>/checkpoints/iter-NNNN/``, verified before a run resumes from one.

A checkpoint holds the buffer (a hard-linked snapshot of an incrementally saved folder), the model
(``Model.save``: weights, optimiser, RNG states), ``state.pkl`` (the :class:`RunState`, the loop's
RNG states, the seed and the config) and, written last, ``MANIFEST.json``: the size and SHA-256 of
every other file.  Everything goes to a temporary sibling folder that is flushed to disk and then
renamed into place, so a kill leaves the previous checkpoint or the new one, never half of one.

:func:`load_checkpoint` checks every file against the manifest before anything is read, so a
corrupted or truncated file is named (:class:`CheckpointError`) instead of resuming a broken model
or failing deep inside a library.  Hashes of files unchanged since the previous checkpoint (the
buffer's hard-linked chunks) are taken from its manifest instead of being computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codeit.errors import UserError
from codeit.files import atomic_write, fsync_dir, fsync_tree
from codeit.run.buffer import ReplayBuffer
from codeit.run.state import RunState

__all__ = ["CHECKPOINT_DIR", "MANIFEST", "Checkpoint", "CheckpointError", "begin_checkpoint", "changed_keys",
           "find_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "MANIFEST.json"
LIVE_BUFFER = "buffer-live"
STATE_FORMAT = 2
_HASH_CHUNK = 1 << 20


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete or damaged (the message names the file)."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` restores (the model is loaded into the caller's model)."""

    path: Path
    state: RunState
    buffer: ReplayBuffer
    seed: int
    config: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_id(path: Path) -> list[int]:
    """What identifies unchanged content for the hash cache: inode, size, modification time."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _manifest(folder: Path, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Size and SHA-256 of every file under ``folder`` (hashes reused for files identical to ones in
    the ``previous`` manifest: same inode, size and modification time, i.e. a hard link)."""
    known = {tuple(v["id"]): v["sha256"] for v in (previous or {}).get("files", {}).values() if "id" in v}
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ident = _file_id(path)
        digest = known.get(tuple(ident)) or _sha256(path)
        files[path.relative_to(folder).as_posix()] = {"size": ident[1], "sha256": digest, "id": ident}
    return {"format": STATE_FORMAT, "files": files}


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The latest complete checkpoint of a run: ``path`` is a checkpoint, a run's work folder or its
    ``checkpoints/`` folder.  :class:`CheckpointError` naming what was looked for."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    folder = path / CHECKPOINT_DIR if (path / CHECKPOINT_DIR).is_dir() else path
    found = sorted(p for p in folder.glob("iter-*") if (p / MANIFEST).is_file()) if folder.is_dir() else []
    if not found:
        raise CheckpointError(f"no complete checkpoint under {path} (looked for {folder}/iter-*/{MANIFEST}); "
                              "was the run killed before its first meta-iteration ended?")
    return found[-1]


def _capture_rngs(rng: np.random.Generator) -> dict[str, Any]:
    return {"loop": rng.bit_generator.state, "python": random.getstate(), "numpy": np.random.get_state()}


def _restore_rngs(state: Mapping[str, Any], rng: np.random.Generator) -> None:
    rng.bit_generator.state = state["loop"]
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def _link_tree(source: Path, target: Path) -> None:
    """A snapshot of ``source`` in ``target``: hard links (the buffer never rewrites a file in place),
    copies where linking fails."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name.startswith(".tmp-"):
            continue
        try:
            os.link(item, target / item.name)
        except OSError:
            shutil.copy2(item, target / item.name)


def save_checkpoint(work_dir: str | os.PathLike, *, state: RunState, buffer: ReplayBuffer, model: Any,
                    rng: np.random.Generator, seed: int, config: Mapping[str, Any], keep: int = 1) -> Path:
    """Write ``checkpoints/iter-NNNN`` (NNNN: the last iteration done) atomically; keep the newest
    ``keep`` checkpoints."""
    return begin_checkpoint(work_dir, state=state, buffer=buffer, model=model, rng=rng, seed=seed, config=config,
                            keep=keep)()


def begin_checkpoint(work_dir: str | os.PathLike, *, state: RunState, buffer: ReplayBuffer, model: Any,
                     rng: np.random.Generator, seed: int, config: Mapping[str, Any],
                     keep: int = 1) -> Callable[[], Path]:
    """:func:`save_checkpoint` in two steps.  This call captures the run as it is now: the state and
    RNGs (pickled), the buffer (:meth:`ReplayBuffer.saver`) and the model (``Model.save`` into the
    checkpoint's temporary folder), so the run may go on at once.  The function it returns writes the
    rest (the buffer's files, ``state.pkl``, fsync, the hashes and ``MANIFEST.json``, the rename into
    place, removing older checkpoints) and may run in another thread while the run changes; it returns
    the checkpoint's folder.  Until it has finished, the previous checkpoint is the latest complete one
    (a kill leaves no ``MANIFEST.json`` in the temporary folder).  Call the functions of one run in
    order, one at a time."""
    folder = Path(work_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"iter-{state.iteration - 1:04d}"
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_buffer = buffer.saver(folder / LIVE_BUFFER)  # incremental, atomic manifest
        if model is not None:
            model.save(str(tmp / "model"))
        state.rng = _capture_rngs(rng)
        saved_state = pickle.dumps({"format": STATE_FORMAT, "state": state, "seed": seed, "config": dict(config)},
                                   protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def write() -> Path:
        return _finish_checkpoint(folder, name, tmp, write_buffer, saved_state, keep)

    return write


def _finish_checkpoint(folder: Path, name: str, tmp: Path, write_buffer: Callable[[], Path], saved_state: bytes,
                       keep: int) -> Path:
    final = folder / name
    done = sorted(p for p in folder.glob("iter-*") if (p / MANIFEST).is_file())
    previous = _read_manifest(done[-1]) if done else None
    try:
        live = write_buffer()
        _link_tree(live, tmp / "buffer")
        with open(tmp / "state.pkl", "wb") as f:
            f.write(saved_state)
        fsync_tree(tmp)
        atomic_write(tmp / MANIFEST, json.dumps(_manifest(tmp, previous), indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    done = sorted(p for p in folder.glob("iter-*") if (p / MANIFEST).is_file())
    for old in done[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`CheckpointError` naming the first file that is missing or differs from the
    manifest (size, then SHA-256)."""
    manifest = _read_manifest(path)
    if manifest is None:
        raise CheckpointError(f"checkpoint {path}: {MANIFEST} is missing or unreadable")
    if manifest.get("format") != STATE_FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {manifest.get('format')!r}, this version reads "
                              f"{STATE_FORMAT}; start a new run")
    for rel, expected in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is damaged: {rel} is missing")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(f"checkpoint {path} is damaged: {rel} has {size:,} bytes, "
                                  f"expected {expected['size']:,} (truncated?)")
        if _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {path} is damaged: {rel} does not match its SHA-256 "
                                  "in the manifest (the file was changed or corrupted)")


def load_checkpoint(path: str | os.PathLike, *, priority: Any, capacity: int, model: Any,
                    rng: np.random.Generator) -> Checkpoint:
    """Verify and load the latest checkpoint under ``path``: the state and buffer are returned, the
    model (if any) and the RNGs are restored in place."""
    found = find_checkpoint(path)
    verify_checkpoint(found)
    try:
        with open(found / "state.pkl", "rb") as f:
            saved = pickle.load(f)
        buffer = ReplayBuffer.load(found / "buffer", priority=priority, capacity=capacity)
    except Exception as err:  # verified files that still fail to load: say which checkpoint
        raise CheckpointError(f"checkpoint {found} cannot be loaded: {type(err).__name__}: {err}") from err
    if model is not None:
        if not (found / "model").exists():
            raise CheckpointError(f"checkpoint {found} holds no model (was it a run without one?)")
        try:
            model.load(str(found / "model"))
        except Exception as err:
            raise CheckpointError(f"checkpoint {found}: the model cannot be loaded: "
                                  f"{type(err).__name__}: {err}") from err
    state: RunState = saved["state"]
    _restore_rngs(state.rng, rng)
    return Checkpoint(found, state, buffer, int(saved.get("seed", 0)), dict(saved.get("config") or {}))


#: config keys a resumed run may change without a warning
RESUME_MAY_CHANGE = frozenset({"n_iterations", "resume_from", "work_dir", "threads", "seed", "policy.seed",
                               "policy.progress", "execution.workers", "baseline.progress"})


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], ignore: frozenset[str] = RESUME_MAY_CHANGE,
                 prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs (``ignore``: keys allowed to)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        if f"{prefix}{key}" in ignore:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_keys(a, b, ignore, prefix=f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
