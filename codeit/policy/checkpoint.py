"""Atomic checkpoints of the policy: model, tokenizer, optimiser, grad scaler and every RNG state.

Layout of a checkpoint directory::

    model/            save_pretrained of the model (safetensors + config)
    tokenizer/        save_pretrained of the tokenizer
    optimizer.pt      optimiser (and GradScaler) state dicts
    rng.pt            python ``random``, numpy (global and the policy's own generator), torch CPU, CUDA
    state.json        the policy's own counters and configuration
    COMPLETE          written last: a directory without it is not a checkpoint

:func:`save_checkpoint` writes everything into a fresh sibling directory, flushes it to disk, then
renames it into place (the previous checkpoint is moved aside first and deleted afterwards), so a run
killed at any moment leaves either the old or the new checkpoint, never a partial one;
:func:`resolve_checkpoint` finds the surviving one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from codeit.files import fsync_dir, fsync_tree

COMPLETE = "COMPLETE"
_TMP_TAG = ".tmp-"
_OLD_TAG = ".old-"


def capture_rng_state(generator: np.random.Generator | None = None) -> dict:
    """Every global RNG state (python, numpy, torch CPU, all CUDA devices) and ``generator``'s."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    if generator is not None:
        state["generator"] = generator.bit_generator.state
    return state


def restore_rng_state(state: dict, generator: np.random.Generator | None = None) -> None:
    """Undo :func:`capture_rng_state` (CUDA states only where CUDA is present with as many devices)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if generator is not None and state.get("generator") is not None:
        generator.bit_generator.state = state["generator"]


def is_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / COMPLETE).is_file()


def resolve_checkpoint(path: str | os.PathLike) -> Path | None:
    """The complete checkpoint at ``path``, or the one moved aside by an interrupted save; else None."""
    path = Path(path)
    if is_checkpoint(path):
        return path
    candidates = sorted(path.parent.glob(f".{path.name}{_OLD_TAG}*"), key=lambda p: p.stat().st_mtime,
                        reverse=True) if path.parent.is_dir() else []
    for candidate in candidates:
        if is_checkpoint(candidate):
            return candidate
    return None


def save_checkpoint(path: str | os.PathLike, *, model, tokenizer, optimizer=None, scaler=None,
                    state: dict | None = None, generator: np.random.Generator | None = None) -> Path:
    """Write a checkpoint to ``path`` atomically (write a sibling, then rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = path.parent / f".{path.name}{_TMP_TAG}{token}"
    try:
        tmp.mkdir()
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "tokenizer")
        torch.save({"optimizer": optimizer.state_dict() if optimizer is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None}, tmp / "optimizer.pt")
        torch.save(capture_rng_state(generator), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state or {}, indent=2, sort_keys=True, default=str))
        (tmp / COMPLETE).write_text("ok\n")
        fsync_tree(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}{_OLD_TAG}{token}"
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # leftovers of saves that were killed earlier
    for stale in path.parent.glob(f".{path.name}{_TMP_TAG}*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in path.parent.glob(f".{path.name}{_OLD_TAG}*"):
        shutil.rmtree(stale, ignore_errors=True)
    return path


def load_checkpoint_states(path: str | os.PathLike, map_location="cpu") -> dict:
    """The non-model parts of a checkpoint: ``optimizer``, ``scaler``, ``rng``, ``state`` and its ``path``."""
    found = resolve_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"no complete checkpoint at {path}")
    opt = torch.load(found / "optimizer.pt", map_location=map_location, weights_only=False)
    rng = torch.load(found / "rng.pt", map_location="cpu", weights_only=False)
    state = json.loads((found / "state.json").read_text())
    return {"path": found, "optimizer": opt["optimizer"], "scaler": opt["scaler"], "rng": rng, "state": state}
