"""The prioritised replay buffer: keys, parts, weighted sampling, capacity, save/load, speed."""

from __future__ import annotations

import numpy as np
import pytest

from codeit.plugins import get_plugin_manager
from codeit.run.buffer import Entry, ReplayBuffer
from codeit.run.priority import HookPriority, make_buffer
from codeit.tasks import Example, Task

GRID = ((1, 2), (3, 4))
TASK = Task("parent", (Example(GRID, GRID),))


def entry(i, *, source="policy", accuracy=1.0, parent="parent", iteration=0, length=10, similarity=1.0):
    return Entry(TASK, f"O = prog{i}(I)", parent, source, accuracy, length, iteration, similarity)


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager()


def performance_buffer(pm, capacity=10_000_000, **weights):
    config = {"plugins": {"priority": weights or {"performance": 1.0}}}
    return ReplayBuffer(HookPriority(pm, config), capacity=capacity)


def test_same_program_for_same_parent_is_stored_once(pm):
    buffer = performance_buffer(pm)
    assert buffer.add(entry(1, accuracy=0.5))
    assert not buffer.add(entry(1, accuracy=1.0))  # same key: the first is kept
    assert buffer.add(entry(1, parent="other"))  # same program, other parent task: a new entry
    assert buffer.add_many([entry(2), entry(2), entry(3)]) == 2
    assert len(buffer) == 4 and buffer[0].accuracy == 0.5
    assert ("parent", "O = prog1(I)") in buffer and entry(3) in buffer and ("x", "y") not in buffer
    assert buffer.get("parent", "O = prog2(I)") == entry(2)


def test_parts_follow_the_source(pm):
    buffer = performance_buffer(pm)
    buffer.add_many([entry(1, source="initial"), entry(2, source="mutated"), entry(3, source="random"),
                     entry(4, source="policy"), entry(5, source="policy")])
    assert buffer.count("initial") == 3 and buffer.count("policy") == 2 and buffer.count() == 5
    assert {e.source for e in buffer.entries("policy")} == {"policy"}
    assert {e.program for e in buffer.sample(10, part="initial", rng=np.random.default_rng(0))} == {
        "O = prog1(I)", "O = prog2(I)", "O = prog3(I)"}
    mixed = buffer.sample_parts({"policy": 1, "initial": 2}, rng=np.random.default_rng(0))
    assert [e.part for e in mixed] == ["policy", "initial", "initial"]
    with pytest.raises(ValueError, match="unknown buffer part"):
        buffer.count("nope")


def test_sampling_is_without_replacement_and_proportional_to_priority(pm):
    buffer = performance_buffer(pm)
    buffer.add_many(entry(i, accuracy=1.0 if i < 10 else 0.1) for i in range(100))
    rng = np.random.default_rng(1)
    idx = buffer.sample_indices(50, rng=rng)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert sorted(buffer.sample_indices(500, rng=rng).tolist()) == list(range(100))  # all if fewer
    assert len(buffer.sample_indices(0, rng=rng)) == 0
    # one draw: P(high group) = 10 * 1.001 / (10 * 1.001 + 90 * 0.101) ~ 0.524
    first = np.array([buffer.sample_indices(1, rng=rng)[0] < 10 for _ in range(4000)])
    assert abs(first.mean() - 10 * 1.001 / (10 * 1.001 + 90 * 0.101)) < 0.03
    # ten draws without replacement: the high group is heavily over-represented
    draws = np.concatenate([buffer.sample_indices(10, rng=rng) for _ in range(300)])
    assert 0.35 < np.mean(draws < 10) < 0.6
    # same seed, same sample
    assert (buffer.sample_indices(20, rng=np.random.default_rng(7))
            == buffer.sample_indices(20, rng=np.random.default_rng(7))).all()


def test_capacity_drops_the_lower_priority_half_of_each_part(pm):
    buffer = performance_buffer(pm, capacity=12)
    buffer.add_many([entry(i, source="initial", accuracy=i / 4) for i in range(4)])
    policy_accuracy = [0, 0.5, 0, 0.5, 0, 0.5, 0, 0]
    buffer.add_many([entry(10 + i, accuracy=a) for i, a in enumerate(policy_accuracy)])
    assert len(buffer) == 12
    buffer.add(entry(99, accuracy=1.0))
    assert len(buffer) == 7  # initial: 4 -> 2; policy: 9 -> 5
    assert sorted(e.accuracy for e in buffer.entries("initial")) == [0.5, 0.75]
    assert sorted(e.accuracy for e in buffer.entries("policy")) == [0.0, 0.5, 0.5, 0.5, 1.0]
    kept_zero = [e.program for e in buffer.entries("policy") if e.accuracy == 0.0]
    assert kept_zero == ["O = prog17(I)"]  # ties: the newest of the accuracy-0 entries survives
    assert ("parent", "O = prog10(I)") not in buffer and buffer.add(entry(10))  # dropped keys can return


def test_priorities_come_from_the_selected_schemes(pm):
    buffer = performance_buffer(pm, performance=1.0, length=1.0)
    buffer.add_many([entry(1, accuracy=1.0, length=0), entry(2, accuracy=0.0, length=100), entry(3, accuracy=0.5,
                                                                                                   length=50)])
    assert np.allclose(buffer.priorities, [1.0 + 1e-3, 0.0 + 1e-3, 0.5 + 1e-3])
    buffer.reprioritise(HookPriority(pm, {"plugins": {"priority": ["uniform"]}, "buffer": {"epsilon": 0.5}}))
    assert np.allclose(buffer.priorities, 1.5)
    with pytest.raises(LookupError, match="no plugin provides priority scheme 'nope'"):
        HookPriority(pm, {"plugins": {"priority": {"nope": 1}}})


def test_a_failing_priority_function_leaves_the_buffer_unchanged():
    def broken(columns):
        return np.zeros(len(columns["accuracy"]))  # priority 0 is not allowed

    buffer = ReplayBuffer(broken)
    with pytest.raises(ValueError, match="priority > 0"):
        buffer.add(entry(1))
    assert len(buffer) == 0 and entry(1) not in buffer


def test_save_and_load_restore_an_identical_buffer(pm, tmp_path):
    buffer = performance_buffer(pm, capacity=1000)
    shared = Task("p2", (Example(GRID, GRID), Example(((5,),), ((6,),))), (Example(GRID, GRID),), "O = f(I)")
    buffer.add_many([entry(i, accuracy=i / 10, iteration=i, source="policy" if i % 3 else "mutated")
                     for i in range(10)])
    buffer.add(Entry(shared, "O = f(I)", "p2", "initial", 1.0, 4, 0, 0.25))
    folder = buffer.save(tmp_path / "buf")
    loaded = ReplayBuffer.load(folder, buffer.priority)
    assert list(loaded) == list(buffer) and loaded.capacity == 1000
    assert loaded[10].task.program == "O = f(I)" and loaded[10].task.test == shared.test
    assert (loaded.priorities == buffer.priorities).all()
    for name, column in buffer.columns().items():
        assert (loaded.columns()[name] == column).all()
    assert (loaded.sample_indices(5, rng=np.random.default_rng(3))
            == buffer.sample_indices(5, rng=np.random.default_rng(3))).all()
    assert not loaded.add(entry(3)) and loaded.add(entry(50))
    # a second save appends a chunk, replaces the arrays and leaves no stray files
    (folder / ".tmp-123-arrays-9.npz").write_bytes(b"interrupted save")
    loaded.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["arrays-1.npz", "entries-0.pkl", "entries-1.pkl",
                                                        "manifest.json"]
    assert len(ReplayBuffer.load(folder)) == 12


def test_load_refuses_files_that_are_not_plain_data(tmp_path):
    import pickle

    buffer = ReplayBuffer()
    buffer.add(entry(1))
    folder = buffer.save(tmp_path / "buf")
    with open(folder / "entries-0.pkl", "wb") as f:
        pickle.dump([entry(1)], f)  # a class instance, not plain records
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        ReplayBuffer.load(folder)
    with pytest.raises(FileNotFoundError, match="manifest"):
        ReplayBuffer.load(tmp_path / "nothing")


@pytest.mark.slow
def test_sampling_at_scale_is_weighted_and_without_replacement(pm):
    # speed at this scale is benchmarks/bench_buffer.py's business; here: the draw itself
    n = 200_000
    buffer = performance_buffer(pm)
    rng = np.random.default_rng(0)
    acc = rng.random(n).tolist()
    buffer.add_many(Entry(TASK, f"O = p{i}(I)", "parent", "policy", acc[i], 5, 0, 0.0) for i in range(n))
    sample = buffer.sample_indices(20_000, part="policy", rng=rng)
    assert len(np.unique(sample)) == 20_000
    assert buffer.columns()["accuracy"][sample].mean() > 0.6  # weighted toward high accuracy (mean 0.5)


def test_make_buffer_wires_the_hook_priority_and_capacity(pm):
    config = {"plugins": {"priority": {"uniform": 1.0}}, "buffer": {"capacity": 4, "epsilon": 0.5}}
    buffer = make_buffer(config, pm)
    buffer.add_many([entry(i, accuracy=0.0) for i in range(5)])
    assert buffer.capacity == 4 and len(buffer) == 3 and np.allclose(buffer.priorities, 1.5)


def test_saving_again_writes_only_new_entries_and_survives_reductions(pm, tmp_path):
    folder = tmp_path / "buf"
    buffer = performance_buffer(pm, capacity=40)
    buffer.add_many(entry(i, accuracy=(i % 5) / 4) for i in range(30))
    buffer.save(folder)
    buffer.add_many(entry(i, accuracy=(i % 5) / 4) for i in range(30, 35))
    buffer.save(folder)
    chunks = sorted(p.name for p in folder.glob("entries-*.pkl"))
    assert chunks == ["entries-0.pkl", "entries-1.pkl"]  # the second save appended a chunk
    assert list(ReplayBuffer.load(folder)) == list(buffer)
    buffer.add_many(entry(i, accuracy=(i % 5) / 4) for i in range(35, 45))  # over capacity: halved
    assert len(buffer) < 40
    buffer.save(folder)
    loaded = ReplayBuffer.load(folder)
    assert list(loaded) == list(buffer) and (loaded.priorities == buffer.priorities).all()
    # a resumed run keeps appending to the folder it loaded from
    loaded.add_many(entry(i) for i in range(100, 103))
    loaded.save(folder)
    again = ReplayBuffer.load(folder)
    assert list(again) == list(loaded) and again.add(entry(200)) and not again.add(entry(101))
    # many drops: the chunks are rewritten into one
    for _ in range(3):
        again.reduce()
    again.save(folder)
    assert len(list(folder.glob("entries-*.pkl"))) == 1 and list(ReplayBuffer.load(folder)) == list(again)


def _copy(grid):
    """An equal grid that shares no object with ``grid``."""
    return tuple(tuple(c for c in row) for row in grid)  # tuple(row) would be row


def _grids(buffer):
    return [g for e in buffer for ex in e.task.examples for g in (ex.input, ex.output)]


def test_grids_are_interned_on_add_and_after_a_save_and_load(pm, tmp_path, monkeypatch):
    from codeit.run import buffer as buffer_module
    from plugins import relabel

    search = Task("search", (Example(((1, 2, 3), (4, 5, 6)), ((7, 7, 7), (0, 0, 0))),
                             Example(((0, 1, 0), (1, 0, 1)), ((9, 9, 9), (8, 8, 8)))))
    buffer = performance_buffer(pm)
    new = []
    for i in range(30):
        near = ((7, 7, 7), (0, 0, i % 10))  # distinct grids, one row in common
        outputs = [_copy(search.train[0].output) if i % 2 else near, _copy(search.train[1].output)]
        new += relabel.hindsight(search, f"O = p{i}(I)", outputs, "policy", i)
    buffer.add_many(new[:10])
    buffer.add_many(new[10:])

    def check(buf):
        for e in buf:  # the relabelled inputs are the search task's own grids (one object per value)
            assert [ex.input for ex in e.task.train] == [ex.input for ex in search.train]
            assert all(a is b for a, b in zip((ex.input for ex in e.task.train), first_inputs))
        by_value = {}
        for g in _grids(buf):
            assert by_value.setdefault(g, g) is g  # equal grids are the same object
        rows = {}
        for g in _grids(buf):
            for row in g:
                assert rows.setdefault(row, row) is row  # and so are equal rows of distinct grids
        assert len(buf.grids) == len(by_value) and buf.grids.rows == len(rows)

    first_inputs = [ex.input for ex in search.train]
    check(buffer)
    assert all(a is b for a, b in zip((ex.input for ex in buffer[0].task.train), first_inputs))
    assert buffer[1].task.train[0].output is buffer[3].task.train[0].output  # equal outputs of two entries

    # saved in batches of 7 records (each its own pickle, its own memo), then 5 more in a second chunk
    monkeypatch.setattr(buffer_module, "CHUNK_BATCH", 7)
    folder = buffer.save(tmp_path / "buf")
    extra = relabel.hindsight(search, "O = extra(I)", [_copy(search.train[0].output), ((7, 7, 7), (0, 0, 5))],
                              "policy", 99)
    buffer.add_many(extra)
    buffer.save(folder)
    assert sorted(p.name for p in folder.glob("entries-*.pkl")) == ["entries-0.pkl", "entries-1.pkl"]
    loaded = ReplayBuffer.load(folder, buffer.priority)
    assert list(loaded) == list(buffer)
    first_inputs = [ex.input for ex in loaded[0].task.train]
    check(loaded)
    # grids added after loading are the loaded objects again
    loaded.add_many(relabel.hindsight(search, "O = later(I)", [_copy(search.train[0].output), None], "policy", 9))
    assert loaded[len(loaded) - 1].task.train[0].output is loaded[1].task.train[0].output


def test_reducing_lets_the_grids_of_dropped_entries_go(pm):
    buffer = performance_buffer(pm, capacity=10)
    tasks = [Task(f"t{i}", (Example(((i % 10, 1),), ((i % 10, 2),)),)) for i in range(10)]
    buffer.add_many(Entry(t, f"O = p{i}(I)", t.key, "policy", 1.0 if i < 5 else 0.0, 1, 0, 0.0)
                    for i, t in enumerate(tasks))
    assert len(buffer.grids) == 20
    buffer.add(Entry(tasks[0], "O = other(I)", "t0", "policy", 1.0, 1, 0, 0.0))  # over capacity: halved
    kept = _grids(buffer)
    assert len(buffer) == 6 and len(buffer.grids) == len(set(kept)) == 10
    assert all(buffer.grids.grid(_copy(g)) is g for g in kept)


def test_load_reads_a_format_2_folder(tmp_path):
    import json
    import pickle

    buffer = ReplayBuffer()
    buffer.add_many(entry(i) for i in range(3))
    folder = buffer.save(tmp_path / "buf")
    with open(folder / "entries-0.pkl", "rb") as f:  # fewer records than a batch: one pickle, as format 2 wrote
        seqs, records = pickle.load(f)
        assert f.read() == b"" and seqs == [0, 1, 2] and len(records) == 3
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 2}))
    loaded = ReplayBuffer.load(folder)
    assert list(loaded) == list(buffer) and loaded[0].task.train[0].input is loaded[2].task.train[0].output
