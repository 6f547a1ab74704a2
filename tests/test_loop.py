"""The CodeIt loop on tiny hand-made tasks: a real tiny T5, the real executor and built-in plugins,
plus test plugins (an oracle sampler, a swap mutator, a hook spy)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from codeit.config import merge_config
from codeit.execution.runner import run_program
from codeit.plugins import get_plugin_manager
from codeit.run.checkpoint import CheckpointError, find_checkpoint, load_checkpoint
from codeit.run.data import RunData
from codeit.run.loop import CodeItLoop
from codeit.run.state import is_timing_metric
from codeit.tasks import Example, Task

torch = pytest.importorskip("torch")

#: a run that hangs (e.g. a runaway DSL line in the main process) fails instead of blocking the suite
pytestmark = pytest.mark.timeout(300)

UNARY = ["vmirror", "hmirror", "dmirror", "cmirror", "rot90", "rot180", "rot270"]
TRAIN_PROGRAMS = {"t-vmirror": "O = vmirror(I)", "t-hmirror": "O = hmirror(I)", "t-rot90": "O = rot90(I)",
                  "t-hconcat": "x1 = vmirror(I)\nO = hconcat(I, x1)", "t-dmirror": "O = dmirror(I)",
                  "t-rot180": "O = rot180(I)"}
SEARCH_PROGRAMS = {"s-rot270": "O = rot270(I)", "s-vmirror": "O = vmirror(I)", "s-cmirror": "O = cmirror(I)",
                   "s-vconcat": "x1 = hmirror(I)\nO = vconcat(I, x1)", "s-unsolved": "x1 = rot90(I)\nO = hconcat(x1, I)"}


def make_task(key: str, program: str, seed: int, with_program: bool) -> Task:
    rng = np.random.default_rng(seed)
    grids = [tuple(tuple(int(c) for c in row) for row in rng.integers(0, 10, size=(3, 4))) for _ in range(4)]
    outputs = run_program(program, grids).outputs
    examples = [Example(i, o) for i, o in zip(grids, outputs)]
    return Task(key, tuple(examples[:3]), tuple(examples[3:]), program if with_program else None)


@pytest.fixture(scope="module")
def data() -> RunData:
    train = [make_task(k, p, i, True) for i, (k, p) in enumerate(TRAIN_PROGRAMS.items())]
    search = [make_task(k, p, 100 + i, False) for i, (k, p) in enumerate(SEARCH_PROGRAMS.items())]
    return RunData(train, search, "test tasks")


class Oracle:
    """Sampler ``oracle``: the right program for some search tasks, plus a wrong and a broken one."""

    def __init__(self, solve_at: dict[str, int]):
        self.solve_at = solve_at

    def codeit_sample_programs(self, name, tasks, iteration):
        if name != "oracle":
            return None
        out = {}
        for task in tasks:
            programs = ["O = vmirror(I)", "O = notaprimitive(I)", "O = vmirror(I)"]
            if task.key in self.solve_at and iteration >= self.solve_at[task.key]:
                programs.insert(0, SEARCH_PROGRAMS[task.key])
            out[task.key] = programs
        return out


class Swap:
    """Mutator: every one-line grid->grid primitive replaced by each other one."""

    def codeit_mutate(self, program, rng):
        variants = []
        for name in UNARY:
            if f"{name}(" in program:
                variants += [program.replace(f"{name}(", f"{other}(") for other in UNARY if other != name]
        order = rng.permutation(len(variants))
        return [variants[i] for i in order]


class Spy:
    def __init__(self):
        self.calls: list[tuple] = []
        self.solutions: list[tuple] = []

    def codeit_run_start(self, start_iteration, tasks):
        self.calls.append(("run_start", start_iteration, len(tasks)))

    def codeit_iteration_start(self, iteration):
        self.calls.append(("iteration_start", iteration))

    def codeit_metrics(self, iteration, metrics):
        self.calls.append(("metrics", iteration, dict(metrics)))

    def codeit_iteration_end(self, iteration):
        self.calls.append(("iteration_end", iteration))

    def codeit_solution_found(self, task, program, iteration, source):
        self.solutions.append((task.key, program, iteration, source))

    def codeit_run_end(self, metrics):
        self.calls.append(("run_end",))


def config(**updates) -> dict:
    base = {
        "seed": 7,
        "n_iterations": 2,
        "init": {"mutated": 6, "samplers": []},
        "train": {"policy_samples": 16, "initial_samples": 16},
        "policy": {"model": "tiny", "device": "cpu", "precision": "fp32", "lr": 1e-3, "grad_accum": 1,
                   "n_samples": 2, "max_new_tokens": 24, "max_side_tokens": 96, "max_input_tokens": 200,
                   "progress": False, "seed": 7},
        "execution": {"workers": 1},
        "plugins": {"model": "t5", "sampler": ["policy", "oracle"], "relabel": ["hindsight"],
                    "priority": ["performance"]},
    }
    return merge_config(base, updates)


def make_loop(cfg, data, tmp_path, name="run", solve_at=None, spy=None, **kwargs) -> CodeItLoop:
    solve_at = {"s-rot270": 0, "s-vconcat": 0, "s-cmirror": 1} if solve_at is None else solve_at
    # the built-in mutators are left out so that the swap mutator alone decides the mutated tasks
    pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1"]}}),
                            plugins=[("oracle", Oracle(solve_at)), ("swap", Swap()), ("spy", spy or Spy())])
    return CodeItLoop(cfg, pm, work_dir=tmp_path / name, data=data, log=lambda text: None, **kwargs)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def without_timings(history):
    return [{k: v for k, v in m.items() if not is_timing_metric(k)} for m in history]


def test_two_iterations_with_a_real_tiny_model(data, tmp_path):
    spy = Spy()
    loop = make_loop(config(), data, tmp_path, spy=spy)
    final = loop.run()
    buffer = loop.buffer

    # hooks, in order
    kinds = [c[0] for c in spy.calls]
    # per iteration: its metrics, iteration_end, checkpoint_seconds; the background write of a checkpoint is
    # reported when the next one begins, and the last one's before run_end
    assert kinds == ["run_start", "iteration_start", "metrics", "iteration_end", "metrics",
                     "iteration_start", "metrics", "iteration_end", "metrics", "metrics", "metrics", "run_end"]
    assert [c[1] for c in spy.calls if c[0] == "metrics" and "checkpoint_write_seconds" in c[2]] == [0, 1]
    assert spy.calls[0] == ("run_start", 0, len(data.search))

    # initial buffer: the six training programs (accuracy 1) and six mutated tasks
    initial = [e for e in buffer if e.source == "initial"]
    assert sorted(e.parent_key for e in initial) == sorted(TRAIN_PROGRAMS)
    assert all(e.accuracy == 1.0 and e.iteration == 0 for e in initial)
    assert loop.state.init_metrics["init_mutated"] == 6
    mutated = [e for e in buffer if e.source == "mutated"]
    assert len(mutated) == 6 and all(e.program != TRAIN_PROGRAMS[e.parent_key] for e in mutated)

    # scoring: vmirror is proposed (as a wrong program) for every task and solves s-vmirror
    m0, m1 = (c[2] for c in spy.calls if c[0] == "metrics" and "solved" in c[2])
    assert all(c[2].keys() in ({"checkpoint_seconds"}, {"checkpoint_write_seconds"})
               for c in spy.calls if c[0] == "metrics" and "solved" not in c[2])
    assert (m0["solved"], m0["solved_cumulative"]) == (3, 3)
    assert (m1["solved"], m1["solved_cumulative"], m1["new_solved"]) == (4, 4, 1)
    assert m1["solve_rate_cumulative"] == pytest.approx(4 / 5)
    assert m1["solved_policy_only"] <= m1["solved_cumulative"]
    assert m0["demo_solved"] == 3 and m1["demo_solve_rate_cumulative"] == pytest.approx(4 / 5)
    assert final["solved_cumulative"] == 4
    assert sorted((k, i, s) for k, _, i, s in spy.solutions) == [
        ("s-cmirror", 1, "oracle"), ("s-rot270", 0, "oracle"), ("s-vconcat", 0, "oracle"), ("s-vmirror", 0, "oracle")]
    assert loop.state.solutions["s-rot270"]["program"] == SEARCH_PROGRAMS["s-rot270"]

    # relabelling: oracle programs enter the initial part, policy programs the policy part
    oracle = [e for e in buffer if e.source == "oracle"]
    assert {e.program for e in oracle} >= {"O = vmirror(I)", SEARCH_PROGRAMS["s-rot270"]}
    assert all(e.source == "policy" for e in buffer.entries("policy"))
    assert "O = notaprimitive(I)" not in {e.program for e in buffer}
    assert m0["new_entries"] >= len(data.search)  # vmirror relabelled for every search task
    assert m1["buffer_size"] == len(buffer)

    # training ran on buffer samples; metrics carry the model's loss
    assert m0["train_experiences"] == 12 and np.isfinite(m0["train_loss"])

    # artifacts (no sink: kept in the work folder) and the checkpoint
    out = tmp_path / "run" / "outputs"
    solutions = json.loads((out / "solutions_1.json").read_text())
    assert sorted(solutions["solutions"]) == ["s-cmirror", "s-rot270", "s-vconcat", "s-vmirror"]
    assert solutions["tasks"]["s-rot270"]["cumulative_top3"][0]["test_correct"] is True
    records = [json.loads(line) for line in gzip.decompress((out / "programs_0.jsonl.gz").read_bytes()).splitlines()]
    assert {"task", "source", "program", "demo_accuracy"} <= set(records[0])
    assert any(r["program"] == SEARCH_PROGRAMS["s-rot270"] and r["test_correct"] for r in records)
    csv_lines = (out / "performance.csv").read_text().splitlines()
    assert csv_lines[0].startswith("iteration,programs_total,solve_rate") and len(csv_lines) == 3
    assert (out / "solve_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_checkpoint(tmp_path / "run").name == "iter-0001"
    assert not (tmp_path / "run" / "checkpoints" / "iter-0000").exists()  # keep: 1


@pytest.mark.slow
def test_resume_gives_the_same_run_as_an_uninterrupted_one(data, tmp_path):
    full = make_loop(config(n_iterations=3), data, tmp_path, "full")
    full.run()

    first = make_loop(config(n_iterations=1), data, tmp_path, "part")
    first.run()
    spy = Spy()
    rest = make_loop(config(n_iterations=3), data, tmp_path, "rest", spy=spy, resume_from=tmp_path / "part")
    rest.run()

    assert rest.resumed_from == tmp_path / "part" / "checkpoints" / "iter-0000"
    assert spy.calls[0] == ("metrics", 0, first.state.history[0])  # the history is reported again
    assert ("run_start", 1, len(data.search)) in spy.calls
    assert without_timings(rest.state.history) == without_timings(full.state.history)
    assert rest.state.solutions == full.state.solutions
    assert rest.state.candidates == full.state.candidates
    assert [(e.key, e.source, e.iteration) for e in rest.buffer] == [(e.key, e.source, e.iteration) for e in full.buffer]
    assert np.array_equal(rest.buffer.priorities, full.buffer.priorities)
    for a, b in zip(rest.model.policy.model.state_dict().values(), full.model.policy.model.state_dict().values()):
        assert torch.equal(a, b)


class StreamingOracle(Oracle):
    """The oracle, handing over its programs one task at a time (as a GPU sampler in batches would)."""

    def __init__(self, solve_at):
        super().__init__(solve_at)
        self.streamed = 0

    def codeit_sample_programs(self, name, tasks, iteration, stream):
        out = super().codeit_sample_programs(name, tasks, iteration)
        if out is not None and stream is not None:
            for key, programs in out.items():
                stream({key: programs})
                self.streamed += 1
        return out


def test_executing_while_sampling_gives_the_same_run(data, tmp_path):
    runs = {}
    for overlap in (False, True):
        oracle = StreamingOracle({"s-rot270": 0, "s-vconcat": 1})
        cfg = config(n_iterations=2, execution={"overlap": overlap}, plugins={"model": None, "sampler": ["oracle"]})
        pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1"]}}),
                                plugins=[("oracle", oracle), ("swap", Swap())])
        loop = CodeItLoop(cfg, pm, work_dir=tmp_path / str(overlap), data=data, log=lambda text: None)
        loop.run()
        runs[overlap] = loop
        assert oracle.streamed == (2 * len(data.search) if overlap else 0)
    plain, overlapped = runs[False], runs[True]
    assert without_timings(overlapped.state.history) == without_timings(plain.state.history)
    assert overlapped.state.candidates == plain.state.candidates
    assert [e.key for e in overlapped.buffer] == [e.key for e in plain.buffer]


def test_the_policy_sampler_streams_every_program_it_returns(data):
    from codeit_plugins import policy_sampler, t5

    cfg = config(policy={"n_samples": 3})
    model = t5.T5Model.from_config(cfg)
    batches = []
    out = policy_sampler.sample_programs(data.search, model, np.random.default_rng(0), cfg, stream=batches.append)
    streamed = {k: v for batch in batches for k, v in batch.items()}
    assert streamed == out.programs and len(batches) == -(-len(data.search) // policy_sampler.STREAM_TASKS)
    assert out.metrics["sample_parsed"] + out.metrics["sample_unparsable"] == 3 * len(data.search)


class Measurer:
    """An observer adding a measurement of its own to each iteration (as gpu_meter does)."""

    def codeit_iteration_end(self, iteration, run):
        run.add_metrics(iteration, {"measured_thing": 10.0 + iteration})


def test_observers_add_metrics_to_the_iteration(data, tmp_path):
    spy = Spy()
    cfg = config(n_iterations=2, plugins={"model": None, "sampler": ["oracle"]})
    pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1"]}}),
                            plugins=[("oracle", Oracle({})), ("spy", spy), ("measurer", Measurer())])
    loop = CodeItLoop(cfg, pm, work_dir=tmp_path / "run", data=data, log=lambda text: None)
    loop.run()
    assert [h["measured_thing"] for h in loop.state.history] == [10.0, 11.0]
    reported = [c[2] for c in spy.calls if c[0] == "metrics" and "measured_thing" in c[2]]
    assert reported == [{"measured_thing": 10.0}, {"measured_thing": 11.0}]


def test_a1_no_exit_policy_samples_never_enter_the_buffer(data, tmp_path):
    cfg = config(n_iterations=2, mutation_chunk=4, plugins={"relabel": [], "model": None, "sampler": ["oracle"]})
    loop = make_loop(cfg, data, tmp_path)
    loop.run()
    history = loop.state.history
    assert [m["new_mutated_entries"] for m in history] == [4, 4]
    assert all(m["new_policy_entries"] == 0 for m in history)
    assert {e.source for e in loop.buffer} == {"initial", "mutated"}
    assert sum(e.source == "mutated" for e in loop.buffer) == 6 + 8
    assert {e.iteration for e in loop.buffer if e.source == "mutated"} == {0, 1}
    assert history[-1]["solved_cumulative"] == 4  # candidates are still scored
    assert "train_loss" not in history[-1]  # no model: nothing to train


def test_a2_filter_keeps_only_programs_solving_every_demonstration(data, tmp_path):
    cfg = config(n_iterations=1, plugins={"relabel": ["filter"], "model": None, "sampler": ["oracle"]})
    loop = make_loop(cfg, data, tmp_path)
    loop.run()
    new = [e for e in loop.buffer if e.source == "oracle"]
    assert new and all(e.accuracy == 1.0 for e in new)
    assert {e.parent_key for e in new} == {"s-rot270", "s-vconcat", "s-vmirror"}
    assert loop.state.init_metrics["init_mutated"] == 6  # the initial mutated tasks are relabelled as usual


def test_a3_uniform_priority_and_a6_no_mutation(data, tmp_path):
    cfg = config(n_iterations=1, init={"mutated": 0},
                 plugins={"priority": ["uniform"], "model": None, "sampler": ["oracle"]})
    loop = make_loop(cfg, data, tmp_path)
    loop.run()
    assert {e.source for e in loop.buffer} == {"initial", "oracle"}
    assert np.unique(loop.buffer.priorities).size == 1


class RecordingModel:
    """A third-party model written only from docs/hooks.md: it keeps every input text it is given."""

    def __init__(self, config):
        self.config = config
        self.trained: list[str] = []
        self.sampled: list[str] = []

    def encode_task(self, task):
        from codeit.encoding import task_text

        return task_text(task, self.config)

    def train(self, examples, config):
        self.trained += [text for text, _ in examples]
        return {"train_loss": 1.0}

    def sample(self, inputs, n, config, rng):
        from codeit.hookspecs import Samples

        self.sampled += list(inputs)
        return Samples([["O = vmirror(I)"] * n for _ in inputs], {"sample_calls": 1})

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)

    def load(self, path):
        pass


class RecordingModelPlugin:
    def __init__(self):
        self.models = []

    def codeit_make_model(self, name, config):
        if name != "recorder":
            return None
        self.models.append(RecordingModel(config))
        return self.models[-1]


def demonstrations_in(text: str) -> int:
    inputs, outputs = text.split("\n")
    assert inputs.count("|") == outputs.count("|")
    return inputs.count("|") + 1


@pytest.mark.parametrize("n_examples", [1, None])
def test_a5_one_demonstration_for_training_and_sampling_alike(data, tmp_path, n_examples):
    plugin = RecordingModelPlugin()
    cfg = config(n_iterations=2, policy={"n_examples": n_examples},
                 plugins={"model": "recorder", "sampler": ["policy"]})
    pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1"]}}),
                            plugins=[("recorder", plugin), ("swap", Swap())])
    loop = CodeItLoop(cfg, pm, work_dir=tmp_path / "run", data=data, log=lambda text: None)
    metrics = loop.run()
    model = plugin.models[0]
    assert model.trained and model.sampled and metrics["sample_calls"] == 1
    counts = {demonstrations_in(text) for text in model.trained + model.sampled}
    if n_examples == 1:
        assert counts == {1}
    else:  # as many as fit in policy.max_side_tokens
        assert max(counts) > 1


def test_unknown_components_fail_with_their_name(data, tmp_path):
    with pytest.raises(LookupError, match="sampler 'nope'"):
        make_loop(config(n_iterations=1, plugins={"model": None, "sampler": ["nope"]}), data, tmp_path).run()
    with pytest.raises(LookupError, match="model 'gpt-x'"):
        make_loop(config(plugins={"model": "gpt-x"}), data, tmp_path).run()


def test_checkpoints_are_complete_or_ignored(data, tmp_path):
    loop = make_loop(config(n_iterations=2, checkpoint={"keep": 2}, plugins={"model": None, "sampler": ["oracle"]}),
                     data, tmp_path)
    loop.run()
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.glob("iter-*")) == ["iter-0000", "iter-0001"]
    # a checkpoint folder without its manifest (a save killed half-way) is not used
    partial = folder / "iter-0002"
    partial.mkdir()
    (partial / "state.pkl").write_bytes(b"garbage")
    assert find_checkpoint(tmp_path / "run").name == "iter-0001"
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        find_checkpoint(tmp_path / "elsewhere")


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        for i in range(64):  # 64 flipped bytes in the middle, size unchanged
            data[len(data) // 2 + i] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("target,how", [("model/model/model.safetensors", "flip"), ("model/rng.pt", "truncate"),
                                        ("state.pkl", "truncate"), ("buffer/arrays-*.npz", "flip")])
def test_a_damaged_checkpoint_is_refused_naming_the_file(data, tmp_path, target, how):
    loop = make_loop(config(n_iterations=1), data, tmp_path)
    loop.run()
    checkpoint = find_checkpoint(tmp_path / "run")
    path = next(checkpoint.glob(target))
    damage(path, how)
    name = str(path.relative_to(checkpoint))
    resumed = make_loop(config(n_iterations=2), data, tmp_path, "resumed", resume_from=tmp_path / "run")
    with pytest.raises(CheckpointError, match=f"damaged: {re.escape(name)}"):
        resumed.run()


@pytest.mark.slow
def test_background_checkpoints_hold_what_foreground_ones_do(data, tmp_path):
    files, states = {}, {}
    for background in (False, True):
        spy = Spy()
        loop = make_loop(config(n_iterations=2, checkpoint={"background": background}), data, tmp_path,
                         f"background-{background}", spy=spy)
        loop.run()
        latest = find_checkpoint(tmp_path / f"background-{background}")
        manifest = json.loads((latest / "MANIFEST.json").read_text())
        files[background] = {rel: f["sha256"] for rel, f in manifest["files"].items() if rel != "state.pkl"}
        state = load_checkpoint(latest, priority=loop.buffer.priority, capacity=100, model=None,
                                rng=np.random.default_rng()).state
        states[background] = (without_timings(state.history), state.candidates, state.solutions,
                               state.rng["loop"], state.rng["python"], state.rng["numpy"][1].tolist())
        # the write time of a background checkpoint is reported with its iteration
        written = [c[1] for c in spy.calls if c[0] == "metrics" and "checkpoint_write_seconds" in c[2]]
        assert written == ([0, 1] if background else [])
    assert files[True] == files[False] and states[True] == states[False]


class PolicyOracle(Oracle):
    """The oracle under the policy sampler's name: fixed programs counted as the policy's."""

    def codeit_sample_programs(self, name, tasks, iteration):
        return super().codeit_sample_programs("oracle", tasks, iteration) if name == "policy" else None


def test_continuous_measures_of_the_policy_progress(data, tmp_path):
    """policy_best_demo_accuracy / policy_best_similarity: means over every search task of the best
    demonstration accuracy / output similarity of the policy's programs, this iteration (_now) and so far."""
    from codeit.scoring import accuracy, mean_similarity

    solve_at = {"s-rot270": 1}
    cfg = config(n_iterations=2, plugins={"model": None, "sampler": ["policy"], "disable": ["policy_sampler"]})
    pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1", "policy_sampler"]}}),
                            plugins=[("oracle", PolicyOracle(solve_at)), ("swap", Swap())])
    loop = CodeItLoop(cfg, pm, work_dir=tmp_path / "run", data=data, log=lambda text: None)
    loop.run()
    m0, m1 = loop.state.history

    def best(task, programs):
        demo = [run_program(p, [e.input for e in task.train]).outputs for p in programs]
        return (max(accuracy(o, task.train) for o in demo), max(mean_similarity(o, task.train) for o in demo))

    n = len(data.search)
    expected = {0: {}, 1: {}}
    for i in (0, 1):
        for task in data.search:
            programs = ["O = vmirror(I)"] + ([SEARCH_PROGRAMS[task.key]] if i >= solve_at.get(task.key, 9) else [])
            expected[i][task.key] = best(task, programs)
    for i, m in ((0, m0), (1, m1)):
        assert m["policy_best_demo_accuracy_now"] == pytest.approx(sum(a for a, _ in expected[i].values()) / n)
        assert m["policy_best_similarity_now"] == pytest.approx(sum(s for _, s in expected[i].values()) / n)
    # so far: the best of both iterations (iteration 1 adds s-rot270's own program)
    so_far = {k: tuple(max(x) for x in zip(expected[0][k], expected[1][k])) for k in expected[0]}
    assert m1["policy_best_similarity"] == pytest.approx(sum(s for _, s in so_far.values()) / n)
    assert m1["policy_best_demo_accuracy"] == pytest.approx(sum(a for a, _ in so_far.values()) / n)
    assert m1["policy_best_demo_accuracy"] > m0["policy_best_demo_accuracy"]
    assert 0 < m0["policy_best_similarity"] <= m1["policy_best_similarity"] <= 1
    assert loop.state.policy_best["s-rot270"] == (1.0, 1.0)
    csv_header = (tmp_path / "run" / "outputs" / "performance.csv").read_text().splitlines()[0].split(",")
    assert {"policy_best_demo_accuracy_now", "policy_best_similarity", "policy_best_similarity_now"} <= set(csv_header)


@pytest.mark.slow
def test_warmup_epochs_train_on_the_initial_part_before_iteration_0(data, tmp_path):
    loop = make_loop(config(n_iterations=1, train={"warmup_epochs": 2}), data, tmp_path)
    loop.run()
    init = loop.state.init_metrics
    assert init["init_warmup_examples"] == 2 * init["init_buffer_size"] == 2 * (6 + 6)  # before any sampling
    assert np.isfinite(init["init_warmup_loss"]) and init["init_warmup_seconds"] > 0
    plain = make_loop(config(n_iterations=1), data, tmp_path, "plain")
    plain.run()
    assert "init_warmup_examples" not in plain.state.init_metrics
    # the warmed-up model starts meta-iteration 0 with a lower loss on the same buffer samples
    assert loop.state.history[0]["train_loss"] < plain.state.history[0]["train_loss"]


@pytest.mark.slow
def test_exclude_known_programs_leaves_out_search_tasks_the_initial_buffer_solves(tmp_path):
    """data.exclude_known_programs: a held-out task whose known program is a training program or one
    of the initial buffer's mutated programs is left out (recalled, not searched), also after a resume."""
    train = [make_task(k, p, i, True) for i, (k, p) in enumerate(TRAIN_PROGRAMS.items())]
    search = [make_task(k, p, 100 + i, True) for i, (k, p) in enumerate(SEARCH_PROGRAMS.items())]
    data = RunData(train, search, "test tasks with known programs")
    cfg = config(n_iterations=1, data={"exclude_known_programs": True},
                 plugins={"model": None, "sampler": ["oracle"]})
    loop = make_loop(cfg, data, tmp_path, solve_at={})
    loop.run()
    held = {e.program for e in loop.buffer if e.source in ("initial", "mutated")} | set(TRAIN_PROGRAMS.values())
    expected = sorted(k for k, p in SEARCH_PROGRAMS.items() if p in held)
    assert "s-vmirror" in expected  # the program of t-vmirror
    assert "s-vconcat" not in expected and "s-unsolved" not in expected  # no swap of a mirror makes these
    assert sorted(loop.state.excluded_search) == expected
    assert [t.key for t in loop.search_tasks] == [k for k in SEARCH_PROGRAMS if k not in expected]
    init = loop.state.init_metrics
    assert (init["init_search_excluded"], init["init_search_tasks"]) == (len(expected), 5 - len(expected))
    assert "s-vmirror" not in loop.state.candidates  # never sampled for

    more = make_loop(config(n_iterations=2, data={"exclude_known_programs": True},
                            plugins={"model": None, "sampler": ["oracle"]}),
                     data, tmp_path, "more", solve_at={}, resume_from=tmp_path / "run")
    more.run()
    assert [t.key for t in more.search_tasks] == [t.key for t in loop.search_tasks]

    plain = make_loop(config(n_iterations=1, plugins={"model": None, "sampler": ["oracle"]}), data, tmp_path,
                      "plain", solve_at={})
    plain.run()
    assert len(plain.search_tasks) == 5 and "init_search_excluded" not in plain.state.init_metrics


class Fickle:
    """Sampler ``policy`` for one task: its right (two-line) program first, then three shorter programs that
    reproduce every demonstration and fail the test, which outrank it in the top 3."""

    RIGHT = "x1 = rot180(I)\nO = hmirror(x1)"
    WRONG = ("O = identity(I)", "O = hmirror(I)", "O = rot180(I)")

    def codeit_sample_programs(self, name, tasks, iteration):
        if name != "policy":
            return None
        return {task.key: [self.RIGHT] if iteration == 0 else list(self.WRONG) for task in tasks}


def test_a_task_solved_at_some_iteration_stays_counted_when_the_top_3_lose_it(data, tmp_path):
    """solved_policy_ever (DESIGN's cumulative "any solution so far") keeps a task the policy's top 3 solved
    at iteration 0 after wrong programs that reproduce every demonstration outrank the right one."""
    symmetric = [((1, 2, 1), (3, 4, 3), (1, 2, 1)), ((5, 0, 5), (0, 5, 0), (5, 0, 5)), ((7, 7), (2, 2), (7, 7))]
    test_input = ((1, 2, 3), (4, 5, 6), (7, 8, 9))
    outputs = run_program(Fickle.RIGHT, symmetric + [test_input]).outputs
    task = Task("s-fickle", tuple(Example(i, o) for i, o in zip(symmetric, outputs[:3])),
                (Example(test_input, outputs[3]),), None)
    search = RunData(data.train, [task], "one task")
    cfg = config(n_iterations=2, plugins={"model": None, "sampler": ["policy"], "disable": ["policy_sampler"]})
    pm = get_plugin_manager(merge_config(cfg, {"plugins": {"disable": ["depth1", "policy_sampler"]}}),
                            plugins=[("fickle", Fickle()), ("swap", Swap())])
    loop = CodeItLoop(cfg, pm, work_dir=tmp_path / "run", data=search, log=lambda text: None)
    loop.run()
    m0, m1 = loop.state.history
    assert (m0["solved_policy_only"], m0["solved_policy_ever"], m0["solved_ever"]) == (1, 1, 1)
    assert (m1["solved_policy_only"], m1["solved_cumulative"]) == (0, 0)  # outranked by three wrong programs
    assert (m1["solved_policy_ever"], m1["solve_rate_policy_ever"], m1["solved_ever"]) == (1, 1.0, 1)
    assert loop.state.policy_solutions() == {"s-fickle": 0}
