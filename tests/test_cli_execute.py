"""``codeit execute`` end to end: the real command in a subprocess, on files and on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeit.execution.runner import run_program

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CODEIT_DATA") or ROOT.parent / "shared" / "codeit-data")
GRID = [[1, 2], [3, 4]]
MIRRORED = [[2, 1], [4, 3]]


def codeit_execute(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "codeit.cli", "execute", *args], input=stdin, env=env, check=False,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def answers(completed: subprocess.CompletedProcess) -> list[dict]:
    assert completed.returncode == 0, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_file_with_good_and_malformed_lines(tmp_path):
    lines = jsonl(
        {"program": "O = vmirror(I)", "inputs": [GRID, [[5]]]},
        "not json",
        "",
        {"program": "def solve_x(I):\n    x1 = vmirror(I)\n    O = hmirror(x1)\n    return O\n", "inputs": [GRID]},
        {"program": "x1 = foo(I)\nO = vmirror(x1)", "inputs": [GRID, GRID]},
        {"inputs": [GRID, GRID]},
        {"program": "O = vmirror(I)"},
        {"program": 5, "inputs": [GRID]},
        {"program": "O = vmirror(I)", "inputs": [[[1, 2], [3]], [[10]], [], [[True, 1]], "grid"]},
        {"program": "O = vmirror(I)", "inputs": []},
        [1, 2],
        {"program": "O = divide(ONE, ZERO)", "inputs": [GRID]},
        {"program": "O = asindices(I)", "inputs": [GRID]},
        "[" * 100_000,
    )
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(lines.encode() + b'{"program": "O = vmirror(I)\xff", "inputs": [[[1]]]}\n')
    out = answers(codeit_execute(str(path), "--workers", "2"))
    assert len(out) == 15
    assert out[0] == {"outputs": [MIRRORED, [[5]]], "errors": [None, None]}
    assert out[1]["outputs"] == [None] and out[1]["errors"][0].startswith("invalid job: line 2 is not valid JSON")
    assert out[2] == {"outputs": [None], "errors": ["invalid job: line 3 is empty"]}
    assert out[3] == {"outputs": [[[4, 3], [2, 1]]], "errors": [None]}
    assert out[4] == {"outputs": [None, None],
                      "errors": ["syntax: line 1: unknown name 'foo' in 'x1 = foo(I)'"] * 2}
    assert out[5] == {"outputs": [None, None], "errors": ["invalid job: line 6 has no 'program'"] * 2}
    assert out[6] == {"outputs": [None], "errors": ["invalid job: line 7 has no 'inputs'"]}
    assert out[7] == {"outputs": [None], "errors": ["invalid job: line 8 has a 'program' that is not a string"]}
    assert out[8]["outputs"] == [None, None, None, [[1, 1]], None]
    assert out[8]["errors"] == ["invalid input: ragged rows: row 1 has 1 cells but row 0 has 2",
                                "invalid input: cell (0, 0) is 10, not a colour 0-9",
                                "invalid input: a grid with no rows", None,
                                "invalid input: a str, not a grid"]
    assert out[9] == {"outputs": [], "errors": []}
    assert out[10]["outputs"] == [None] and "is a JSON list" in out[10]["errors"][0]
    assert out[11]["errors"][0].startswith("error: O = divide(ONE, ZERO): ZeroDivisionError")
    assert out[12] == {"outputs": [None], "errors": ["invalid output: a frozenset, not a grid"]}
    assert out[13]["outputs"] == [None] and out[13]["errors"][0].startswith("invalid job: line 14 is not valid")
    assert out[14]["outputs"] == [None] and out[14]["errors"][0].startswith("syntax: line 1: ")


def test_stdin_and_many_lines_keep_their_order():
    programs = ["O = vmirror(I)", "O = hmirror(I)", "O = rot90(I)", "x1 = bad(I)\nO = rot90(x1)"]
    records = [{"program": programs[i % 4], "inputs": [[[i % 10, 0]]]} for i in range(600)]
    out = answers(codeit_execute("-", "--workers", "2", stdin=jsonl(*records)))
    assert len(out) == 600
    for i, answer in enumerate(out):
        expected = [[[0, i % 10]]], [[[i % 10, 0]]], [[[i % 10], [0]]], [None]
        assert answer["outputs"] == expected[i % 4], i


@pytest.mark.slow
def test_max_elements_and_timeout_options():
    fill = {"program": "x1 = asindices(I)\nO = fill(I, ONE, x1)", "inputs": [[[0] * 40] * 25]}
    default = answers(codeit_execute("-", "--workers", "1", stdin=jsonl(fill)))[0]
    assert default == {"outputs": [None], "errors": ["limit: x1 dropped (1,000 elements ≥ 1,000)"]}
    unlimited = answers(codeit_execute("-", "--workers", "1", "--max-elements", "0", stdin=jsonl(fill)))[0]
    assert unlimited == {"outputs": [[[1] * 40] * 25], "errors": [None]}

    spin = ("x1 = multiply(TEN, TEN)\nx2 = multiply(x1, TEN)\nx3 = power(rot90, x2)\nx4 = power(x3, x2)\n"
            "x5 = power(x4, x2)\nO = x5(I)")
    timed = answers(codeit_execute("-", "--workers", "1", "--timeout", "0.3",
                                   stdin=jsonl({"program": spin, "inputs": [GRID, GRID]},
                                               {"program": "O = vmirror(I)", "inputs": [GRID]})))
    assert timed[0]["outputs"] == [None, None]
    assert all(e.startswith("timeout:") and "limit 0.3 s per input" in e for e in timed[0]["errors"])
    assert timed[1] == {"outputs": [MIRRORED], "errors": [None]}


def test_published_programs_through_the_cli(tmp_path):
    files = sorted((DATA / "training").glob("*.json"))[::10]
    if not files:
        pytest.skip(f"CodeIt data not found at {DATA} (set CODEIT_DATA)")
    tasks = [json.loads(f.read_text()) for f in files]
    records = [{"program": t["program"], "inputs": [e["input"] for e in t["training_examples"] + t["test_examples"]]}
               for t in tasks]
    path = tmp_path / "published.jsonl"
    path.write_text(jsonl(*records))
    out = answers(codeit_execute(str(path)))
    assert len(out) == len(tasks) == 40
    for answer, record in zip(out, records):  # the same as running them in this process
        expected = run_program(record["program"], record["inputs"])
        assert answer == {"outputs": [json_grid(g) for g in expected.outputs], "errors": list(expected.errors)}
    solved = sum(a["outputs"] == [e["output"] for e in t["training_examples"] + t["test_examples"]]
                 for a, t in zip(out, tasks))
    assert solved == 37  # every 10th published program; 3 of them fail under CodeIt's rules too


def json_grid(grid):
    return None if grid is None else [list(row) for row in grid]


def test_unreadable_file_and_bad_options(tmp_path):
    missing = codeit_execute(str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad = codeit_execute("-", "--timeout", "0", stdin="")
    assert bad.returncode == 2 and "timeouts must be positive" in bad.stderr
    assert answers(codeit_execute("-", stdin="")) == []


def test_one_line_never_ends_the_run():
    """Any single line, whatever it holds, gets its own error line and the run goes on (before: a list
    nested 600 deep parsed, then killed the dispatcher and every result in the read-ahead window)."""
    deep = "[" * 600 + "1" + "]" * 600
    lines = [jsonl({"program": "O = rot90(I)", "inputs": [[[i % 10]]]}) for i in range(300)]
    lines.append('{"program": "O = rot90(I)", "inputs": [' + deep + ']}\n')
    lines += [jsonl({"program": "O = rot90(I)", "inputs": [[[1, 2]]]}) for _ in range(10)]
    out = answers(codeit_execute("-", "--workers", "2", "--timeout", "1", stdin="".join(lines)))
    assert len(out) == 311
    assert all(a == {"outputs": [[[i % 10]]], "errors": [None]} for i, a in enumerate(out[:300]))
    assert out[300]["outputs"] == [None] and out[300]["errors"][0].startswith("invalid input: cannot be passed")
    assert all(a == {"outputs": [[[1], [2]]], "errors": [None]} for a in out[301:])


@pytest.mark.slow
def test_a_stream_that_is_not_json_lines_is_one_error(tmp_path):
    """A binary file or a text that is not JSON lines is one clear error with exit status 2 (before:
    dozens of per-"line" errors and exit 0); a bad line after a good one is still its own error."""
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 40)
    for args, stdin in [((str(binary),), None), (("-",), "def solve(I):\n    return I\n"),
                        (("-",), '{"program": "O = rot90(I)",\n "inputs": [[[1]]]}\n')]:
        done = codeit_execute(*args, stdin=stdin)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert len(done.stderr.splitlines()) == 1 and "is not JSON lines: line 1 is not" in done.stderr
    good_then_bad = jsonl({"program": "O = rot90(I)", "inputs": [[[1]]]}, "not json")
    assert [len(a["errors"]) for a in answers(codeit_execute("-", stdin=good_then_bad))] == [1, 1]
    assert answers(codeit_execute("-", stdin="\n" + good_then_bad))[0] == {
        "outputs": [None], "errors": ["invalid job: line 1 is empty"]}


def test_a_line_too_long_is_a_limit_error():
    """A line of more than 16 MiB gets a ``limit:`` error without being parsed; its neighbours run."""
    long_line = '{"program": "O = rot90(I)", "inputs": [[[' + "1," * (9 << 20) + '1]]]}\n'
    stdin = jsonl({"program": "O = rot90(I)", "inputs": [[[1]]]}) + long_line + jsonl(
        {"program": "O = rot90(I)", "inputs": [[[2]]]})
    out = answers(codeit_execute("-", "--workers", "1", stdin=stdin))
    assert out == [{"outputs": [[[1]]], "errors": [None]},
                   {"outputs": [None], "errors": ["limit: line 2 takes 18.0 MiB (at most 16 MiB per line)"]},
                   {"outputs": [[[2]]], "errors": [None]}]


@pytest.mark.slow
def test_memory_stays_flat_whatever_the_lines_hold(tmp_path):
    """The read-ahead is bounded in bytes, not only in lines: 24 lines of 8 MB (four 1000x1000 grids
    each) leave the command's memory far below what holding them would take (before: ~40 MB more per
    line, all 24 at once)."""
    row = "[" + ",".join(["3"] * 1000) + "]"
    grid = "[" + ",".join([row] * 1000) + "]"
    line = '{"program": "O = downscale(I, TEN)", "inputs": [' + ",".join([grid] * 4) + "]}\n"
    path = tmp_path / "big.jsonl"
    path.write_text(line * 24)
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); "
               "print(done.returncode, done.stdout.count(b'\\n'), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "codeit.cli", "execute", str(path),
                           "--workers", "2"], env=env, capture_output=True, text=True, timeout=600, check=True)
    code, lines, peak_kib = map(int, done.stdout.split())
    assert (code, lines) == (0, 24)
    assert peak_kib < 320 << 10, f"peak resident memory {peak_kib >> 10} MiB"
