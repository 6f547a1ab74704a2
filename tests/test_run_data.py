"""The tasks of a run: a CodeIt data folder read through the run config, broken programs named."""

from __future__ import annotations

import json

import pytest

from codeit.errors import UserError
from codeit.run.data import load_run_data

GRID = [[1, 2], [3, 4]]


def codeit_task(key: str, program: str | None) -> dict:
    example = {"input": GRID, "output": GRID}
    body = f"def solve_{key}(I):\n    {program}\n    return O" if program else None
    return {"program": body, "training_examples": [example, example], "test_examples": [example],
            "task_key": key, "extra_info": ""}


@pytest.fixture
def folder(tmp_path):
    tasks = {"training": {"a": "O = vmirror(I)", "b": "O = vmirror(I, I, I", "c": "O = nosuchprimitive(I)"},
             "evaluation": {"e": None}}
    for subset, programs in tasks.items():
        (tmp_path / subset).mkdir()
        for key, program in programs.items():
            (tmp_path / subset / f"{key}.json").write_text(json.dumps(codeit_task(key, program)))
    (tmp_path / "split_keys.json").write_text(json.dumps({"train": ["a", "b", "c"], "val": [], "test": ["e"]}))
    return tmp_path


def test_training_programs_that_do_not_parse_are_named_and_left_out(folder):
    said = []
    data = load_run_data({"data": {"source": "codeit", "path": str(folder)}}, log=said.append)
    assert [t.key for t in data.parents] == ["a"]
    assert len(data.train) == 3 and [t.key for t in data.search] == ["e"]
    (line,) = said
    assert line.startswith("warning: 2 training program(s) do not parse") and "b (" in line and "c (" in line


def test_a_missing_folder_or_split_is_a_user_error(folder, tmp_path):
    with pytest.raises(UserError, match="needs the CodeIt data folder"):
        load_run_data({"data": {"source": "codeit", "path": str(tmp_path / "none")}})
    with pytest.raises(UserError, match="no split 'dev'"):
        load_run_data({"data": {"source": "codeit", "path": str(folder), "search_split": "dev"}})


def test_max_program_tokens_keeps_the_search_tasks_with_short_known_programs(tmp_path):
    tasks = {"training": {"a": "O = vmirror(I)", "v1": "O = rot90(I)",
                          "v2": "x1 = rot90(I)\nx2 = hmirror(x1)\nx3 = vmirror(x2)\nO = hconcat(x3, x1)"},
             "evaluation": {"e": None}}
    for subset, programs in tasks.items():
        (tmp_path / subset).mkdir()
        for key, program in programs.items():
            (tmp_path / subset / f"{key}.json").write_text(json.dumps(codeit_task(key, program)))
    (tmp_path / "split_keys.json").write_text(json.dumps({"train": ["a"], "val": ["v1", "v2"], "test": ["e"]}))
    section = {"source": "codeit", "path": str(tmp_path), "search_split": "val", "train_splits": ["train"]}
    assert [t.key for t in load_run_data({"data": section}).search] == ["v1", "v2"]
    short = load_run_data({"data": {**section, "max_program_tokens": 12}})
    assert [t.key for t in short.search] == ["v1"] and [t.key for t in short.train] == ["a"]
    with pytest.raises(UserError, match="known programs"):
        load_run_data({"data": {**section, "search_split": "test", "max_program_tokens": 12}})


def test_hold_out_moves_short_training_tasks_to_search_the_same_for_every_run(tmp_path):
    long = "x1 = rot90(I)\nx2 = hmirror(x1)\nx3 = vmirror(x2)\nO = hconcat(x3, x1)"
    tasks = {"training": {"a": "O = vmirror(I)", "b": "O = rot90(I)", "c": "O = hmirror(I)", "d": long,
                          "n": None, "v": "O = rot180(I)"}}
    (tmp_path / "training").mkdir()
    (tmp_path / "evaluation").mkdir()
    for key, program in tasks["training"].items():
        (tmp_path / "training" / f"{key}.json").write_text(json.dumps(codeit_task(key, program)))
    (tmp_path / "split_keys.json").write_text(json.dumps({"train": ["a", "b", "c", "d", "n"], "val": ["v"],
                                                          "test": []}))
    section = {"source": "codeit", "path": str(tmp_path), "search_split": "val", "train_splits": ["train"],
               "max_program_tokens": 12, "hold_out": 2}
    first = load_run_data({"data": section})
    held = {t.key for t in first.search} - {"v"}
    # two of the three short programs move; the long one and the task without a program stay in training
    assert len(held) == 2 and held < {"a", "b", "c"} and len(first.search) == 3
    assert {t.key for t in first.train} == {"a", "b", "c", "d", "n"} - held
    assert {t.key for t in load_run_data({"data": section}).search} == {t.key for t in first.search}
    with pytest.raises(UserError, match="hold_out=4: only 3 training tasks"):
        load_run_data({"data": {**section, "hold_out": 4}})
