"""The Sacred experiment: every named config at smoke size, the file record, failures, output
filtering, and resuming a run killed with SIGKILL."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sacred.utils import apply_backspaces_and_linefeeds

from codeit.config import LAPTOP, NAMED_CONFIGS, PAPER_CONFIG, SMOKE, merge_config
from codeit.experiment import file_record_dir, make_experiment
from codeit.run.buffer import ReplayBuffer
from codeit.run.checkpoint import find_checkpoint
from codeit.run.state import is_timing_metric

torch = pytest.importorskip("torch")

#: a run that hangs (e.g. a runaway DSL line in the main process) fails instead of blocking the suite
pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parent.parent
SYS_CAPTURE = {"--capture": "sys"}

#: the named config ``test_size``, applied after ``smoke`` and before the config under test (so that
#: the latter's own values win): smaller still, so that every named config runs in the time budget
TEST_SIZE = {"n_iterations": 2, "data": {"n_search_tasks": 6}, "init": {"mutated": 30},
             "train": {"policy_samples": 48, "initial_samples": 32},
             "policy": {"n_samples": 2, "max_new_tokens": 32}, "execution": {"workers": 2}}


def cli_updates(updates: dict, prefix: str = "") -> list[str]:
    """Config updates as Sacred command-line ``key=value`` arguments."""
    out = []
    for key, value in updates.items():
        if isinstance(value, dict):
            out += cli_updates(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("records") / "runs"


@pytest.fixture(scope="module")
def ex(runs_root):
    return make_experiment(file_root=runs_root, use_env=False, save_git_info=False,
                           named_configs={"test_size": TEST_SIZE})


def run_smoke(ex, *names, **updates):
    """``with smoke test_size <names> <updates>``."""
    return ex.run(named_configs=["smoke", "test_size", *names], config_updates=updates, options=SYS_CAPTURE)


def record(run) -> Path:
    folder = file_record_dir(run)
    assert folder is not None and folder.is_dir()
    return folder


def metrics_of(folder: Path) -> dict[str, list[float]]:
    return {name: m["values"] for name, m in json.loads((folder / "metrics.json").read_text()).items()}


def saved_buffer(folder: Path) -> ReplayBuffer:
    return ReplayBuffer.load(find_checkpoint(folder) / "buffer")


def shared_data_available() -> bool:
    from codeit.tasks import default_data_dir

    return default_data_dir() is not None


# ------------------------------------------------------------------------------------------------
# configuration


def test_default_config_carries_the_paper_values(ex):
    run = ex.run("print_config", options=SYS_CAPTURE)
    cfg = run.config
    assert cfg["n_iterations"] == 100
    assert cfg["init"]["mutated"] == 19_200 and cfg["mutation_chunk"] == 0
    assert cfg["train"] == {"policy_samples": 90_000, "initial_samples": 10_000, "warmup_epochs": 0}
    assert cfg["buffer"]["capacity"] == 10_000_000
    policy = cfg["policy"]
    assert policy["model"] == "Salesforce/codet5p-220m" and not policy["random_weights"]
    assert (policy["lr"], policy["batch_size"], policy["grad_accum"]) == (5e-5, 8, 64)
    assert (policy["n_samples"], policy["temperature"], policy["max_new_tokens"]) == (24, 0.95, 512)
    assert cfg["execution"]["max_elements"] == 1000 and cfg["execution"]["max_cells"] == 1000
    assert cfg["data"]["max_demos"] == 10 and cfg["data"]["search_split"] == "test"
    assert cfg["plugins"]["sampler"] == ["policy"] and cfg["plugins"]["relabel"] == ["hindsight"]
    assert cfg["plugins"]["priority"] == ["performance"] and cfg["plugins"]["model"] == "t5"


def test_policy_section_lists_every_policy_setting():
    """Sacred rejects keys missing from the config, so every PolicyConfig field must be there."""
    import dataclasses

    from codeit.policy import PolicyConfig

    assert set(PAPER_CONFIG["policy"]) == {f.name for f in dataclasses.fields(PolicyConfig)}


@pytest.mark.parametrize("names, expect", [
    (["a1_no_exit"], {"plugins.relabel": [], "mutation_chunk": 9600}),
    (["smoke", "a1_no_exit"], {"plugins.relabel": [], "mutation_chunk": 100, "policy.model": "tiny"}),
    (["a1_no_exit", "smoke"], {"mutation_chunk": 100}),
    (["smoke", "a3_no_priority"], {"plugins.priority": ["uniform"], "plugins.relabel": ["hindsight"]}),
    (["smoke", "a2_no_relabeling", "a6_no_mutation"], {"plugins.relabel": ["filter"], "init.mutated": 0}),
    (["smoke", "large"], {"policy.model": "large", "policy.grad_accum": 1}),
    (["smoke", "small"], {"policy.model": "small"}),
    (["smoke", "base"], {"policy.model": "base"}),
    (["smoke", "codet5p_220m"], {"policy.model": "Salesforce/codet5p-220m"}),
    (["smoke", "codet5_small"], {"policy.model": "Salesforce/codet5-small"}),
    (["smoke", "codet5p_770m", "a4_no_pretraining"], {"policy.model": "Salesforce/codet5p-770m",
                                                        "policy.random_weights": True}),
    (["mutation_baseline"], {"pipeline": "mutation_baseline", "plugins.model": None}),
])
def test_named_configs_compose(ex, names, expect):
    cfg = ex.run("print_config", named_configs=names, options=SYS_CAPTURE).config
    for dotted, value in expect.items():
        node = cfg
        for part in dotted.split("."):
            node = node[part]
        assert node == value, dotted
    assert set(NAMED_CONFIGS) <= set(ex.named_configs)


ABLATIONS = ["a1_no_exit", "a2_no_relabeling", "a3_no_priority", "a4_no_pretraining", "a5_one_demo", "a6_no_mutation",
             "control"]


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_laptop_composes_with_every_ablation(ex, ablation):
    """``with laptop <ablation>``: the laptop size with the ablation's change on top, nothing else changed."""
    laptop = ex.run("print_config", named_configs=["laptop"], options=SYS_CAPTURE).config
    both = ex.run("print_config", named_configs=["laptop", ablation], options=SYS_CAPTURE).config
    updates = NAMED_CONFIGS[ablation][0]
    expected = merge_config(laptop, updates)
    if ablation == "a1_no_exit":  # a ratio of the laptop's init.mutated (3000)
        expected["mutation_chunk"] = 1500
    if ablation == "a4_no_pretraining":  # the tiny model is randomly initialised anyway
        assert both["policy"]["model"] == "tiny"
    for key in ("seed",):
        both.pop(key, None), expected.pop(key, None)
    assert both == {k: v for k, v in expected.items() if k in both}
    assert both["data"]["max_program_tokens"] == 64 and both["policy"]["n_samples"] == 128
    assert both["train"]["warmup_epochs"] == 3


def test_laptop_control_is_the_laptop_without_relabelling(ex):
    cfg = ex.run("print_config", named_configs=["laptop", "control"], options=SYS_CAPTURE).config
    assert cfg["plugins"]["relabel"] == [] and cfg["plugins"]["sampler"] == ["policy"]
    # the same sampled-program count as the laptop run
    assert cfg["policy"]["n_samples"] == 128 and cfg["n_iterations"] == LAPTOP["n_iterations"] == 70
    assert cfg["data"]["hold_out"] == 16  # the same search set: the same held-out training tasks
    assert cfg["mutation_chunk_ratio"] == 0.0  # unlike A1: no fresh mutated tasks


def test_model_size_configs_build_the_intended_models():
    """The size configs at full size cannot train in the suite's budget on a CPU: build them on the meta
    device (shapes only) and check their scale."""
    from codeit.policy.model import ModelSpec, count_parameters, make_model
    from codeit.policy.tokenizer import dsl_tokenizer

    tokenizer = dsl_tokenizer()
    expected = {"tiny": (1e5, 1e6), "small": (35e6, 70e6), "base": (150e6, 260e6), "large": (550e6, 800e6)}
    for name, (low, high) in expected.items():
        model_name = NAMED_CONFIGS[name][0]["policy"]["model"]
        with torch.device("meta"):
            n = count_parameters(make_model(ModelSpec(model_name), tokenizer))
        assert low < n < high, name


# ------------------------------------------------------------------------------------------------
# every named config at smoke size


@pytest.mark.slow
def test_smoke_alone_records_metrics_and_artifacts(ex):
    run = run_smoke(ex)
    assert run.status == "COMPLETED"
    folder = record(run)
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((folder / "config.json").read_text())["policy"]["model"] == "tiny"
    metrics = metrics_of(folder)
    for name in ["solve_rate", "solve_rate_cumulative", "solve_rate_policy_only", "solve_rate_policy_ever",
                 "solved_policy_ever", "solve_rate_ever", "demo_solve_rate",
                 "buffer_size", "buffer_policy", "new_entries", "programs_distinct", "train_loss",
                 "sample_seconds", "execute_seconds", "train_seconds", "programs_per_second"]:
        assert len(metrics[name]) == 2, name
    for name in ["performance.csv", "solve_rate.png", "solutions_0.json", "solutions_1.json",
                 "programs_0.jsonl.gz", "programs_1.jsonl.gz"]:
        assert (folder / name).is_file(), name
    artifacts = json.loads((folder / "run.json").read_text())["artifacts"]
    assert set(artifacts) >= {"performance.csv", "solve_rate.png", "solutions_1.json", "programs_1.jsonl.gz"}
    lines = (folder / "performance.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("iteration,")
    programs = gzip.decompress((folder / "programs_0.jsonl.gz").read_bytes()).decode().splitlines()
    assert len(programs) == metrics["programs_distinct"][0]
    info = json.loads((folder / "info.json").read_text())
    assert info["work_dir"] == str(folder)
    assert info["initial_buffer"]["size"] == metrics["buffer_size"][0] - metrics["new_entries"][0]
    assert run.result["iterations"] == 2


@pytest.mark.slow
def test_a1_no_exit(ex):
    run = run_smoke(ex, "a1_no_exit")
    assert run.status == "COMPLETED" and run.config["mutation_chunk"] == 15
    metrics = metrics_of(record(run))
    assert metrics["new_policy_entries"] == [0, 0] and metrics["buffer_policy"] == [0, 0]
    assert all(n > 0 for n in metrics["new_mutated_entries"])  # fresh mutated tasks every iteration


@pytest.mark.slow
def test_a2_no_relabeling(ex):
    run = run_smoke(ex, "a2_no_relabeling")
    assert run.status == "COMPLETED"
    policy = saved_buffer(record(run)).entries("policy")
    assert all(e.accuracy == 1.0 for e in policy)


@pytest.mark.slow
def test_a3_no_priority(ex):
    run = run_smoke(ex, "a3_no_priority")
    assert run.status == "COMPLETED"
    buffer = saved_buffer(record(run))
    assert len(buffer) and len(set(buffer.priorities.tolist())) == 1


def model_of(ex, *names, **updates):
    """The model a run with these named configs builds (the ``codeit_make_model`` hook of its config)."""
    from codeit.plugins import get_plugin_manager

    config = ex.run("print_config", named_configs=["smoke", "test_size", *names], config_updates=updates,
                    options=SYS_CAPTURE).config
    return get_plugin_manager(config).hook.codeit_make_model(name=config["plugins"]["model"], config=config)


@pytest.mark.slow
def test_a4_no_pretraining(ex, tmp_path):
    # the effect, not the flag: from a pretrained directory, A4 starts from other (random) weights
    import torch

    policy = model_of(ex, seed=1).policy
    policy.model.save_pretrained(tmp_path / "pretrained")
    policy.tokenizer.save_pretrained(tmp_path / "pretrained")
    source = policy.model
    pretrained = {"policy": {"model": str(tmp_path / "pretrained")}}
    loaded = model_of(ex, seed=2, **pretrained).policy.model.state_dict()
    scratch = model_of(ex, "a4_no_pretraining", seed=2, **pretrained).policy.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    assert not all(torch.equal(scratch[k], v) for k, v in source.state_dict().items())
    run = run_smoke(ex, "a4_no_pretraining")
    assert run.status == "COMPLETED" and run.config["policy"]["random_weights"] is True


@pytest.mark.slow
def test_a5_one_demo(ex):
    # the effect, not the flag: the model's input holds one demonstration (a ``|``-free pair) instead of all
    from codeit.encoding import encode_task
    from codeit.tasks import Example, Task

    grid = ((1, 2, 0), (0, 3, 4))
    task = Task("t", tuple(Example(grid, grid[::-1]) for _ in range(3)))
    one, every = model_of(ex, "a5_one_demo").encode_task(task), model_of(ex).encode_task(task)
    assert one == encode_task(task, n_examples=1, max_tokens=10**6) != every
    assert every.count("|") > 0 == one.count("|")
    run = run_smoke(ex, "a5_one_demo")
    assert run.status == "COMPLETED" and run.config["policy"]["n_examples"] == 1


@pytest.mark.slow
def test_a6_no_mutation(ex):
    run = run_smoke(ex, "a6_no_mutation")
    assert run.status == "COMPLETED"
    assert "mutated" not in run.info["initial_buffer"]["sources"]


@pytest.mark.slow
def test_tiny_and_dev(ex):
    run = run_smoke(ex, "tiny", "dev", n_iterations=1)
    assert run.status == "COMPLETED"
    assert run.config["data"]["search_split"] == "val" and run.config["data"]["train_splits"] == ["train"]


@pytest.mark.skipif(not shared_data_available(), reason="the CodeIt data folder (../shared/codeit-data or "
                    "$CODEIT_DATA) is absent")
@pytest.mark.slow
def test_codeit_data(ex):
    run = run_smoke(ex, "codeit_data", n_iterations=1)
    assert run.status == "COMPLETED"
    assert run.info["initial_buffer"]["sources"]["initial"] > 300  # the published training programs


@pytest.mark.slow
@pytest.mark.skipif(not shared_data_available(), reason="needs the CodeIt data ($CODEIT_DATA or ../shared/codeit-data)")
def test_laptop_and_its_control_run_at_test_size(ex):
    """``with laptop``, cut to the suite's size: warm-up, the short-program search set, the new metrics."""
    for names in (["laptop"], ["laptop", "control"]):
        run = ex.run(named_configs=[*names, "test_size"], config_updates={"n_iterations": 1, "train": {"warmup_epochs": 1}},
                     options=SYS_CAPTURE)
        assert run.status == "COMPLETED"
        metrics = metrics_of(record(run))
        for name in ("policy_best_demo_accuracy", "policy_best_demo_accuracy_now", "policy_best_similarity",
                     "policy_best_similarity_now"):
            assert len(metrics[name]) == 1 and 0.0 <= metrics[name][0] <= 1.0
        # the published training programs, less the 16 whose tasks are held out for the search set
        assert 280 < run.info["initial_buffer"]["sources"]["initial"] < 300
        if "control" in names:
            assert metrics["new_policy_entries"] == [0]


@pytest.mark.slow
@pytest.mark.parametrize("candidates", ["solving", "any"])
def test_mutation_baseline(ex, candidates):
    run = run_smoke(ex, "mutation_baseline", baseline={"candidates": candidates})
    assert run.status == "COMPLETED"
    assert run.config["plugins"]["model"] is None
    folder = record(run)
    assert (folder / "performance.csv").is_file()
    out = Path(run.info["work_dir"])
    assert json.loads((out / "manifest.json").read_text())["candidates"] == candidates
    solutions = json.loads((folder / "solutions.json").read_text())
    accuracies = {p["demo_accuracy"] for programs in solutions.values() for p in programs}
    if candidates == "solving":
        assert accuracies <= {1.0}
    assert run.result["samples"] > 0 and "solve_rate" in run.result


#: the least work a run can do: one meta-iteration, two search tasks, a handful of experiences
MICRO = {"n_iterations": 1, "data": {"n_search_tasks": 2}, "init": {"mutated": 4},
         "train": {"policy_samples": 4, "initial_samples": 4},
         "policy": {"n_samples": 1, "max_new_tokens": 8, "batch_size": 4}}


@pytest.mark.slow
@pytest.mark.parametrize("size", ["small", "base"])
def test_model_size_configs_run(ex, size):
    """``with smoke small`` / ``base``: the real architectures train and sample (a micro workload on the
    CPU)."""
    run = ex.run(named_configs=["smoke", "test_size", size], config_updates=MICRO, options=SYS_CAPTURE)
    assert run.status == "COMPLETED" and run.config["policy"]["model"] == size
    from transformers import T5Config

    config = T5Config.from_pretrained(find_checkpoint(record(run)) / "model" / "model")
    assert config.d_model == {"small": 512, "base": 768}[size]


@pytest.mark.slow
def test_large_config_runs(tmp_path):
    """``with smoke large``: 770M parameters, ~13 GB at its peak in fp32 with the optimiser state, so it
    runs in its own process (memory returned at exit) and without a checkpoint (9 GB to write)."""
    env = {k: v for k, v in os.environ.items() if k != "CODEIT_MONGO_URL"}
    updates = merge_config(merge_config(TEST_SIZE, MICRO), {"checkpoint": {"every": 0}})
    command = [sys.executable, str(REPO / "experiments" / "codeit.py"), "with", "smoke", "large", *cli_updates(updates)]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "runs" / "1"
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((folder / "config.json").read_text())["policy"]["model"] == "large"
    assert len(metrics_of(folder)["train_loss"]) == 1


HUB_CONFIGS = ["codet5_small", "codet5p_220m", "codet5p_770m"]


@pytest.fixture(scope="module")
def offline_hub(tmp_path_factory):
    """A Hugging Face cache holding, under each hub name a named config uses, a tiny stand-in
    checkpoint written with ``save_pretrained``: with ``HF_HUB_OFFLINE=1`` the runs below load it through
    the same ``from_pretrained(name)`` call that downloads the real checkpoint on a connected machine."""
    from codeit.policy.model import ModelSpec, make_model
    from codeit.policy.tokenizer import dsl_tokenizer

    cache = tmp_path_factory.mktemp("hf") / "hub"
    tokenizer = dsl_tokenizer()
    model = make_model(ModelSpec("tiny"), tokenizer, seed=0)
    commit = "0123456789abcdef0123456789abcdef01234567"
    for name in HUB_CONFIGS:
        repo = cache / ("models--" + NAMED_CONFIGS[name][0]["policy"]["model"].replace("/", "--"))
        snapshot = repo / "snapshots" / commit
        model.save_pretrained(snapshot)
        tokenizer.save_pretrained(snapshot)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("name", HUB_CONFIGS)
def test_hub_model_configs_run_from_the_local_cache(name, offline_hub, tmp_path):
    hub_name = NAMED_CONFIGS[name][0]["policy"]["model"]
    env = {k: v for k, v in os.environ.items() if k != "CODEIT_MONGO_URL"}
    env.update(HF_HUB_CACHE=str(offline_hub), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    updates = merge_config(merge_config(TEST_SIZE, MICRO), {"seed": 3})
    command = [sys.executable, str(REPO / "experiments" / "codeit.py"), "with", "smoke", name, *cli_updates(updates)]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "runs" / "1"
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert json.loads((folder / "config.json").read_text())["policy"]["model"] == hub_name
    from transformers import T5Config

    assert T5Config.from_pretrained(find_checkpoint(folder) / "model" / "model").d_model == 64  # the stand-in


@pytest.mark.slow
def test_a_hub_model_that_is_not_available_fails_with_its_name(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CODEIT_MONGO_URL"}
    env.update(HF_HUB_CACHE=str(tmp_path / "empty-cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, str(REPO / "experiments" / "codeit.py"), "with", "smoke", "codet5p_220m",
               *cli_updates(MICRO)]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert out.returncode != 0
    assert "cannot load the tokenizer 'Salesforce/codet5p-220m'" in out.stderr and "policy.model" in out.stderr
    assert json.loads((tmp_path / "runs" / "1" / "run.json").read_text())["status"] == "FAILED"

# ------------------------------------------------------------------------------------------------
# failures, captured output


@pytest.mark.slow
def test_failed_run_is_recorded_with_its_traceback(ex, tmp_path, monkeypatch):
    (tmp_path / "failing_plugin.py").write_text(
        "def codeit_iteration_start(iteration):\n"
        "    if iteration == 1:\n"
        "        raise RuntimeError('plugin failed on purpose at iteration 1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="on purpose"):
        run_smoke(ex, "a6_no_mutation", plugins={"modules": ["failing_plugin"]})
    folders = sorted(p for p in (ex.file_root).iterdir() if p.name.isdigit())
    folder = max(folders, key=lambda p: int(p.name))
    run_json = json.loads((folder / "run.json").read_text())
    assert run_json["status"] == "FAILED"
    assert "RuntimeError: plugin failed on purpose at iteration 1" in "".join(run_json["fail_trace"])
    assert metrics_of(folder)["solve_rate"] and (folder / "performance.csv").is_file()  # what was done is kept


@pytest.mark.slow
def test_progress_bars_do_not_flood_the_captured_output(ex):
    run = run_smoke(ex, "a6_no_mutation", n_iterations=1, policy={"progress": True})
    assert run.status == "COMPLETED"
    out = (record(run) / "cout.txt").read_text()
    assert "iteration 1/1: solved" in out
    assert "\r" not in out
    assert len(out) < 20_000


# ------------------------------------------------------------------------------------------------
# resume


def wait_until_stable(path: Path, quiet_s: float = 1.0) -> bytes:
    """``path``'s content once it has stopped growing (a tee process may still be writing it)."""
    before, still_since = None, time.monotonic()
    while True:
        now = path.read_bytes()
        if now != before:
            before, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return now
        time.sleep(0.1)


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(ex, tmp_path):
    # time limits no program reaches on a loaded machine: equal runs need equal time-limit hits (a mutated
    # program that times out in one run only gives the two runs different buffers from the start)
    updates = merge_config(TEST_SIZE, {"n_iterations": 3, "seed": 11,
                                       "execution": {"timeout": 20.0, "line_timeout": 10.0}})
    temp = tmp_path / "tmp"  # the killed run's temp folder, where Sacred's capture file lives
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CODEIT_MONGO_URL"}
    env["TMPDIR"] = str(temp)
    # no heartbeat before the kill (-b 600): what its record holds was written with its iterations
    command = [sys.executable, str(REPO / "experiments" / "codeit.py"), "with", "smoke", *cli_updates(updates),
               "--beat-interval=600"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    killed_dir = tmp_path / "runs" / "1"
    deadline = time.monotonic() + 300
    try:
        while not (killed_dir / "checkpoints" / "iter-0000" / "MANIFEST.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads((killed_dir / "run.json").read_text())["status"] == "RUNNING"  # never finished
    done = find_checkpoint(killed_dir)
    assert done.name in ("iter-0000", "iter-0001")
    # the file record is complete up to the checkpoint (at least)
    steps = json.loads((killed_dir / "metrics.json").read_text())["solve_rate"]["steps"]
    assert steps == list(range(len(steps))) and len(steps) > int(done.name[5:]), (steps, done)
    # Sacred's capture file, left behind in the temp folder, holds the output the record lacks
    (capture,) = [p for p in temp.iterdir() if p.is_file() and b'Started run with ID "1"' in p.read_bytes()]
    output = wait_until_stable(capture).decode()

    resumed = ex.run(named_configs=["smoke"], config_updates={**updates, "resume_from": str(killed_dir)},
                     options=SYS_CAPTURE)
    # resuming closes the killed run's record: INTERRUPTED, its output recovered, the capture file gone
    killed = json.loads((killed_dir / "run.json").read_text())
    assert killed["status"] == "INTERRUPTED" and killed["stop_time"] >= killed["start_time"]
    assert killed["resumed_by"] == {"run_id": resumed._id, "run_dir": str(record(resumed))}
    assert (killed_dir / "cout.txt").read_text() == apply_backspaces_and_linefeeds(output)
    assert not capture.exists()

    whole = ex.run(named_configs=["smoke"], config_updates=updates, options=SYS_CAPTURE)  # same values
    assert resumed.status == whole.status == "COMPLETED"
    assert resumed.info["resumed_from"]["checkpoint"] == str(done)
    assert resumed.info["resumed_from"]["run_id"] == "1"
    assert resumed.info["resumed_from"]["iterations_done"] == int(done.name[5:]) + 1

    a, b = record(resumed), record(whole)
    ma, mb = metrics_of(a), metrics_of(b)
    # iteration 0's count includes the initial buffer's executions
    assert sum(ma["execution_timeouts"]) == sum(mb["execution_timeouts"]) == 0, "a time limit was hit"
    assert {k: v for k, v in ma.items() if not is_timing_metric(k)} == \
        {k: v for k, v in mb.items() if not is_timing_metric(k)}
    assert all(len(v) == 3 for k, v in ma.items() if not is_timing_metric(k))
    sa, sb = (json.loads((f / "solutions_2.json").read_text()) for f in (a, b))
    assert sa == sb
    assert (a / "performance.csv").read_text() == (b / "performance.csv").read_text()
    assert [(e.key, e.accuracy) for e in saved_buffer(a)] == [(e.key, e.accuracy) for e in saved_buffer(b)]


@pytest.mark.slow
def test_resume_from_a_run_id(ex, runs_root):
    first = run_smoke(ex, "a6_no_mutation", n_iterations=1)
    # `resume_from=3` on the command line reaches the config as a number
    more = run_smoke(ex, "a6_no_mutation", n_iterations=2, resume_from=int(first._id))
    assert more.status == "COMPLETED"
    assert more.info["resumed_from"]["run_dir"] == str(runs_root / str(first._id))
    assert len(metrics_of(record(more))["solve_rate"]) == 2


def test_smoke_named_config_is_the_documented_size():
    assert SMOKE["n_iterations"] == 3 and SMOKE["data"]["n_search_tasks"] == 20
    assert SMOKE["policy"]["model"] == "tiny" and SMOKE["policy"]["device"] == "cpu"
    assert set(SMOKE) <= set(PAPER_CONFIG)


def test_named_configs_are_not_changed_by_earlier_runs(ex):
    ex.run("print_config", named_configs=["smoke", "codet5p_770m", "a4_no_pretraining"], options=SYS_CAPTURE)
    cfg = ex.run("print_config", named_configs=["smoke", "a4_no_pretraining"], options=SYS_CAPTURE).config
    assert cfg["policy"]["model"] == "tiny" and cfg["policy"]["random_weights"] is True
    assert ex.run("print_config", options=SYS_CAPTURE).config["policy"]["model"] == "Salesforce/codet5p-220m"


# ------------------------------------------------------------------------------------------------
# MongoDB


@pytest.mark.slow
@pytest.mark.mongo
def test_one_id_per_run_in_the_console_the_database_and_the_file_record(mongo_db, tmp_path):
    """Runs recorded to files alone take ids 1 and 2; the database is empty; the next run, recorded to
    both, is run 3 everywhere (not 1 in MongoDB and ``runs/1-1`` on disk)."""
    url, db_name = mongo_db
    files_only = make_experiment(file_root=tmp_path / "runs", use_env=False, save_git_info=False,
                                 named_configs={"test_size": TEST_SIZE})
    nothing = {"n_iterations": 0, "init": {"mutated": 0, "samplers": []}}  # a run that only starts
    for _ in range(2):
        files_only.run(named_configs=["smoke", "test_size"], config_updates=nothing, options=SYS_CAPTURE)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name[0].isdigit()) == ["1", "2"]
    both = make_experiment(file_root=tmp_path / "runs", use_env=False, save_git_info=False,
                           named_configs={"test_size": TEST_SIZE})
    run = both.run(named_configs=["smoke", "test_size"], config_updates=nothing,
                   options={**SYS_CAPTURE, "--mongo_db": f"{url}/{db_name}"})
    assert run._id == 3 and record(run) == tmp_path / "runs" / "3"


class KillDatabaseAfterFirstIteration:
    def __init__(self, server):
        self.server = server

    def codeit_iteration_end(self, iteration):
        if iteration == 0:
            self.server.kill()


@pytest.mark.slow
@pytest.mark.mongo
def test_smoke_run_outlives_its_database(mongo_server_factory, tmp_path, caplog):
    """The database dies after the first meta-iteration: the run completes, the file record is whole,
    the loss is announced, and once the database is back ``resync`` completes the MongoDB record."""
    import pymongo

    from codeit import recording

    server = mongo_server_factory()
    ex = make_experiment(file_root=tmp_path / "runs", use_env=False, save_git_info=False,
                         mongo_options={"timeout_ms": 500, "final_attempts": 2, "retry_after_s": 0.2},
                         plugins=(("killer", KillDatabaseAfterFirstIteration(server)),),
                         named_configs={"test_size": TEST_SIZE})
    caplog.set_level(logging.WARNING, logger="codeit.recording")
    run = ex.run(named_configs=["smoke", "test_size", "a6_no_mutation"],
                 options={**SYS_CAPTURE, "--mongo_db": f"{server.url}/killed"})
    assert run.status == "COMPLETED"
    folder = record(run)
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert len(metrics_of(folder)["solve_rate"]) == 2 and (folder / "performance.csv").is_file()

    messages = [r.getMessage() for r in caplog.records if r.name == "codeit.recording"]
    assert any("Lost the connection to MongoDB" in m for m in messages), messages
    (unsaved,) = (tmp_path / "runs" / "mongo-unsaved").glob("*.pickle")
    assert any(str(unsaved) in m and "resync" in m for m in messages), messages

    restarted = mongo_server_factory(port=server.port, folder=server.folder)
    client = pymongo.MongoClient(restarted.url, serverSelectionTimeoutMS=5000)
    try:
        db = client["killed"]
        assert db.runs.find_one({"_id": run._id})["status"] == "RUNNING"
        recording.resync(unsaved)
        doc = db.runs.find_one({"_id": run._id})
        assert doc["status"] == "COMPLETED"
        assert db.metrics.find_one({"run_id": run._id, "name": "solve_rate"})["steps"] == [0, 1]
        assert {"performance.csv", "solve_rate.png"} <= {a["name"] for a in doc["artifacts"]}
    finally:
        client.close()
