"""Durable writes (codeit.files): the old content or the new, never half, and no temporary left."""

from __future__ import annotations

import json
import pickle

import pytest

from codeit.files import atomic_write, fsync_dir, fsync_tree


def test_atomic_write_accepts_text_bytes_and_writers(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, json.dumps({"x": 1}))
    assert json.loads(path.read_text()) == {"x": 1}
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, lambda f: pickle.dump([1, 2], f))
    assert pickle.loads(path.read_bytes()) == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "state.pkl"
    atomic_write(path, "old")

    def half(f):
        f.write(b"new but ")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, half)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pkl"]


def test_fsync_helpers_walk_trees_and_tolerate_missing_paths(tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("x")
    fsync_tree(tmp_path / "tree")
    fsync_dir(tmp_path / "missing")  # nothing to sync: no error
    assert (tmp_path / "tree" / "sub" / "f").read_text() == "x"
