"""Checkpoints written in two steps (capture now, write later, possibly in a background thread): what
is written is what was captured, and a process killed with SIGKILL while writing leaves the previous
checkpoint complete and verified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from codeit.plugins import get_plugin_manager
from codeit.run.buffer import Entry, ReplayBuffer
from codeit.run.checkpoint import begin_checkpoint, find_checkpoint, load_checkpoint, verify_checkpoint
from codeit.run.priority import HookPriority
from codeit.run.state import RunState
from codeit.tasks import Example, Task

REPO = Path(__file__).resolve().parent.parent
GRID = ((1, 2), (3, 4))


def entries(start: int, n: int, source: str = "policy") -> list[Entry]:
    task = Task("parent", (Example(GRID, GRID),))
    return [Entry(task, f"O = prog{i}(I)", "parent", source, (i % 4) / 4, 10, i % 7, 1.0)
            for i in range(start, start + n)]


def test_a_buffer_is_written_as_it_was_when_captured(tmp_path):
    buffer = ReplayBuffer(capacity=40)
    buffer.add_many(entries(0, 30))
    buffer.save(tmp_path / "live")  # a first save: the next one is incremental
    buffer.add_many(entries(30, 5))
    expected = (list(buffer), buffer.priorities.copy())
    write = buffer.saver(tmp_path / "live")
    buffer.add_many(entries(35, 10))  # over capacity: reduced (compacted in place) before the write
    assert len(buffer) < 35
    write()
    loaded = ReplayBuffer.load(tmp_path / "live")
    assert list(loaded) == expected[0] and np.array_equal(loaded.priorities, expected[1])
    buffer.save(tmp_path / "live")  # the buffer goes on saving incrementally from what write() left
    assert list(ReplayBuffer.load(tmp_path / "live")) == list(buffer)


def test_a_checkpoint_holds_the_run_as_it_was_when_begun(tmp_path):
    pm = get_plugin_manager()
    priority = HookPriority(pm, {})
    buffer = ReplayBuffer(priority)
    buffer.add_many(entries(0, 20))
    state = RunState(iteration=1, history=[{"solved": 1.0}])
    rng = np.random.default_rng(5)
    write = begin_checkpoint(tmp_path, state=state, buffer=buffer, model=None, rng=rng, seed=3, config={"a": 1})
    expected_rng = rng.bit_generator.state
    # the run goes on before the files are written
    buffer.add_many(entries(20, 20))
    state.iteration, state.history = 2, [{"solved": 1.0}, {"solved": 2.0}]
    rng.random(10)
    path = write()
    assert path.name == "iter-0000"
    verify_checkpoint(path)
    found = load_checkpoint(tmp_path, priority=priority, capacity=100, model=None, rng=rng)
    assert len(found.buffer) == 20 and found.state.iteration == 1 and found.state.history == [{"solved": 1.0}]
    assert rng.bit_generator.state == expected_rng and found.seed == 3


CHILD = textwrap.dedent("""
    import sys, threading
    import numpy as np
    from codeit.run.buffer import Entry, ReplayBuffer
    from codeit.run.checkpoint import begin_checkpoint, save_checkpoint
    from codeit.run.state import RunState
    from codeit.tasks import Example, Task

    work = sys.argv[1]
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer()
    def add(start, n):
        grids = [tuple(tuple(int(c) for c in row) for row in rng.integers(0, 10, (6, 6))) for _ in range(50)]
        buffer.add_many(Entry(Task(f"p/{i}", (Example(grids[i % 50], grids[(i + 1) % 50]),)), f"O = prog{i}(I)",
                              "p", "policy", 0.5, 10, 0, 1.0) for i in range(start, start + n))
    add(0, 1000)
    state = RunState(iteration=1)
    save_checkpoint(work, state=state, buffer=buffer, model=None, rng=rng, seed=0, config={})
    add(1000, 200_000)
    state.iteration = 2
    write = begin_checkpoint(work, state=state, buffer=buffer, model=None, rng=rng, seed=0, config={})
    thread = threading.Thread(target=write)
    thread.start()
    print("writing", flush=True)
    thread.join()
    print("written", flush=True)
""")


@pytest.mark.slow
def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line == b"writing\n", proc.stderr.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    latest = find_checkpoint(tmp_path)
    verify_checkpoint(latest)  # complete, whichever it is
    found = load_checkpoint(tmp_path, priority=lambda cols: np.ones(len(cols["accuracy"])), capacity=10**6,
                            model=None, rng=np.random.default_rng())
    expected = {"iter-0000": 1000, "iter-0001": 201_000}[latest.name]
    assert len(found.buffer) == expected and found.state.iteration == int(latest.name[5:]) + 1


def test_shared_grids_stay_shared_through_checkpoints(tmp_path):
    from codeit.run.checkpoint import save_checkpoint

    search = Task("search", (Example(((1, 2), (3, 4)), ((5, 6), (7, 8))), Example(((0, 0),), ((9, 9),))))

    def relabelled(i):  # inputs: the search task's grids; outputs: equal copies, or one cell changed
        out = tuple(tuple(c for c in row) for row in search.train[0].output) if i % 2 else ((5, 6), (7, i % 10))
        examples = (Example(search.train[0].input, out), Example(search.train[1].input, ((9, 9),)))
        return Entry(Task(f"search/{i}", examples, (), f"O = p{i}(I)"), f"O = p{i}(I)", "search", "policy",
                     0.5, 3, 0, 0.5)

    buffer = ReplayBuffer()
    buffer.add_many(relabelled(i) for i in range(20))
    assert buffer[0].task.train[0].input is search.train[0].input  # the search task's own object
    rng = np.random.default_rng(0)
    save_checkpoint(tmp_path, state=RunState(iteration=1), buffer=buffer, model=None, rng=rng, seed=0, config={})
    buffer.add_many(relabelled(i) for i in range(20, 30))  # an incremental checkpoint: a second chunk
    save_checkpoint(tmp_path, state=RunState(iteration=2), buffer=buffer, model=None, rng=rng, seed=0, config={})
    loaded = load_checkpoint(tmp_path, priority=lambda cols: np.ones(len(cols["accuracy"])), capacity=100,
                             model=None, rng=rng).buffer
    assert list(loaded) == list(buffer)
    for e in loaded:
        assert e.task.train[0].input is loaded[0].task.train[0].input
        assert e.task.train[1].output is loaded[0].task.train[1].output
        assert e.task.train[0].output[0] is loaded[0].task.train[0].output[0]  # a row shared by distinct grids
    odd = [e.task.train[0].output for e in loaded if int(e.program[5:-3]) % 2]
    assert len(odd) == 15 and all(g is odd[0] for g in odd)
