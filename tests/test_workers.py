"""The worker processes of codeit.execution.workers: real interpreters running the test handler of
tests/worker_handlers.py (the executor and the baseline are tested as its clients elsewhere)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codeit.execution.workers import Job, Outcome, WorkerPool, WorkerSpec

TESTS = Path(__file__).resolve().parent
SPEC = WorkerSpec("worker_handlers:Handler")


@pytest.fixture(autouse=True)
def handlers_importable(monkeypatch):
    """Workers find tests/worker_handlers.py (they start from a fresh interpreter)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def job(job_id: int, command: str, argument=None, budget: float = 30.0) -> Job:
    return Job(job_id, pickle.dumps((command, argument)), budget)


def run_all(pool: WorkerPool, jobs: list[Job], chunk: int = 1) -> dict[int, Outcome]:
    pool.submit(jobs)
    done: dict[int, Outcome] = {}
    while pool.busy:
        for outcome in pool.step(chunk):
            done[outcome.job.id] = outcome
    return done


def answer(outcome: Outcome):
    assert outcome.answer is not None, outcome
    return pickle.loads(outcome.answer)


def test_jobs_are_answered_after_their_setup():
    with WorkerPool(SPEC, 2) as pool:
        pool.setup = ("a", b"setup a")
        done = run_all(pool, [job(i, "echo", i) for i in range(40)], chunk=4)
        assert sorted(done) == list(range(40))
        assert all(answer(o)[:2] == (i, [b"setup a"]) for i, o in done.items())
        pool.setup = ("b", b"setup b")
        done = run_all(pool, [job(i, "echo", i) for i in range(40, 60)], chunk=4)
        assert all(answer(o)[1][-1] == b"setup b" for o in done.values())
        assert {answer(o)[2] for o in done.values()} <= set(pool.pids)
        assert all(len(answer(o)[1]) == 2 for o in done.values())  # each worker got each setup once
        assert pool.restarts == 0


@pytest.mark.slow
def test_the_watchdog_kills_a_silent_job_and_spares_one_that_beats():
    # budgets of 1 s: a job silent longer is killed; one that beats every 0.3 s runs as long as it
    # needs; the job queued behind the killed one is sent again to the new worker.  The worker's
    # start-up is not part of any budget.
    with WorkerPool(SPEC, 1) as pool:
        done = run_all(pool, [job(0, "sleep", 60, budget=1.0), job(1, "echo", 1), job(2, "beat", 8, budget=1.0),
                              job(3, "echo", 3)], chunk=2)
        assert pool.restarts == 1
    assert done[0].killed and done[0].died == "signal 9 SIGKILL" and done[0].silent_s >= 1.0
    assert answer(done[1])[0] == 1 and answer(done[3])[0] == 3
    assert answer(done[2]) == "beat"  # 2.4 s in all


def test_moving_a_big_job_is_not_timed_against_it():
    # 96 MB through a pipe takes about half a second here; the job's budget of a quarter starts when
    # the worker has taken it (its answer, the size, costs nothing)
    big = b"SIZE" + b"x" * (96 << 20)
    with WorkerPool(SPEC, 1) as pool:
        done = run_all(pool, [Job(0, big, 0.25), job(1, "echo", 1, budget=0.5)])
        assert pool.restarts == 0
    assert answer(done[0]) == len(big) and answer(done[1])[0] == 1


def test_a_job_that_kills_the_worker_taking_it_fails_alone():
    # 80 MB cannot be read under a 64 MiB address-space cap: the worker dies taking the message of
    # four jobs; they are sent again one per message, and only the big one fails (after two tries)
    spec = WorkerSpec("worker_handlers:Handler", memory_mb=64)
    with WorkerPool(spec, 1) as pool:
        jobs = [job(0, "echo", 0), Job(1, pickle.dumps(("echo", b"x" * (80 << 20))), 30.0), job(2, "echo", 2),
                job(3, "echo", 3)]
        done = run_all(pool, jobs, chunk=4)
        assert pool.restarts == 3
    assert done[1].answer is None and done[1].taking and done[1].died == "exit code 3"
    assert [answer(done[i])[0] for i in (0, 2, 3)] == [0, 2, 3]


def test_errors_and_deaths_end_their_job_only():
    with WorkerPool(SPEC, 1) as pool:
        done = run_all(pool, [job(0, "raise", "boom"), job(1, "echo", 1), job(2, "exit", 7), job(3, "echo", 3)],
                       chunk=4)
        assert pool.restarts == 1
    assert done[0].error == "ValueError: boom"
    assert done[2].died == "exit code 7" and not done[2].killed and not done[2].taking
    assert answer(done[1])[0] == 1 and answer(done[3])[0] == 3


def test_workers_cannot_import_torch():
    with WorkerPool(SPEC, 1) as pool:
        assert answer(run_all(pool, [job(0, "torch")])[0]).startswith("ImportError: import of torch halted")


def test_workers_that_fail_to_start_are_an_error():
    with WorkerPool(WorkerSpec("worker_handlers:NoSuchHandler"), 1) as pool:
        pool.submit([job(0, "echo")])
        with pytest.raises(RuntimeError, match="fail to start"):
            while pool.busy:
                pool.step()


def test_a_worker_whose_parent_goes_away_exits_quietly():
    # the parent dies while its workers run a job: each finishes, finds nobody to answer and exits
    # without a word (before: a BrokenPipeError traceback from each worker)
    script = textwrap.dedent("""
        import os, pickle, time
        from codeit.execution.workers import Job, WorkerPool, WorkerSpec
        pool = WorkerPool(WorkerSpec("worker_handlers:Handler", beat_interval=0.0), 2)
        pool.submit([Job(i, pickle.dumps(("echo", i)), 30.0) for i in range(2)])
        while pool.busy:
            pool.step()
        pool.submit([Job(2, pickle.dumps(("beat", 3)), 30.0), Job(3, pickle.dumps(("sleep", 1.0)), 30.0)])
        start = time.monotonic()
        while time.monotonic() - start < 0.3:  # both jobs taken
            pool.step()
        print(*pool.pids, flush=True)
        os._exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and len(done.stdout.split()) == 2
    assert done.stderr == ""  # the workers held stderr open until they were gone
