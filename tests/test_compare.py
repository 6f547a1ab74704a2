"""``codeit compare`` on real recorded runs: smoke-size CodeIt runs, 2 arms x 2 seeds, recorded once
per module to files (and, in the MongoDB test, to the MongoDB-compatible server as well).

Every number the command reports is checked against the runs' own ``metrics.json``, computed here
without the command's code.  At this size nothing is solved (the solve rates are 0 in every run),
so the checks also use metrics that differ between seeds (``train_loss``) or arms (``buffer_size``).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from services import free_port

from codeit import cli
from codeit.compare import compare_runs, read_file_runs, read_mongo_runs
from codeit.compare.plot import curves_figure
from codeit.errors import UserError
from codeit.experiment import make_experiment

pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(600)

SYS_CAPTURE = {"--capture": "sys"}
#: smaller than ``smoke`` (tests/test_experiment.py's size, without random programs): a few seconds a run
TEST_SIZE = {"n_iterations": 2, "data": {"n_search_tasks": 6}, "init": {"mutated": 30, "samplers": []},
             "train": {"policy_samples": 48, "initial_samples": 32},
             "policy": {"n_samples": 2, "max_new_tokens": 32}, "execution": {"workers": 2}}
BASE, A6 = "smoke test_size", "smoke test_size a6_no_mutation"
ARMS = {BASE: ["smoke", "test_size"], A6: ["smoke", "test_size", "a6_no_mutation"]}
SEEDS = (1, 2)
METRICS = ["solve_rate_policy_only", "solve_rate_cumulative", "solved_cumulative", "policy_best_demo_accuracy",
           "train_loss", "buffer_size"]


def record_runs(root: Path, options: dict | None = None) -> None:
    """Both arms, both seeds, recorded under ``root`` (and where ``options`` say)."""
    ex = make_experiment(file_root=root, use_env=False, save_git_info=False, named_configs={"test_size": TEST_SIZE})
    for names in ARMS.values():
        for seed in SEEDS:
            run = ex.run(named_configs=names, config_updates={"seed": seed}, options={**SYS_CAPTURE, **(options or {})})
            assert run.status == "COMPLETED"


class FailAtIteration:
    """A plugin that fails the run when meta-iteration ``at`` starts: a real partial record."""

    def __init__(self, at: int):
        self.at = at

    def codeit_iteration_start(self, iteration):
        if iteration == self.at:
            raise RuntimeError(f"failed on purpose at iteration {iteration}")


def record_failed_run(root: Path, options: dict | None = None) -> None:
    """The base arm with seed 3, failed after its first meta-iteration."""
    ex = make_experiment(file_root=root, use_env=False, save_git_info=False, named_configs={"test_size": TEST_SIZE},
                         plugins=(("fail", FailAtIteration(1)),))
    with pytest.raises(RuntimeError, match="on purpose"):
        ex.run(named_configs=ARMS[BASE], config_updates={"seed": 3}, options={**SYS_CAPTURE, **(options or {})})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """runs 1-4: the two arms' completed runs; run 5: the base arm, seed 3, FAILED after one
    meta-iteration; run 6: run 5 resumed and completed; 98: a run.json cut short; 99: a run that
    never logged a metric."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    record_runs(root)
    record_failed_run(root)
    ex = make_experiment(file_root=root, use_env=False, save_git_info=False, named_configs={"test_size": TEST_SIZE})
    resumed = ex.run(named_configs=ARMS[BASE], config_updates={"seed": 3, "resume_from": 5}, options=SYS_CAPTURE)
    assert resumed.status == "COMPLETED" and str(resumed._id) == "6"
    assert json.loads((root / "5" / "run.json").read_text())["status"] == "FAILED"
    broken = root / "98"
    shutil.copytree(root / "1", broken)
    (broken / "run.json").write_text((root / "1" / "run.json").read_text()[:100])
    started = root / "99"
    shutil.copytree(root / "1", started)
    (started / "metrics.json").unlink()
    return root


def finals(root: Path, run_id: str, metric: str) -> float:
    return json.loads((root / run_id / "metrics.json").read_text())[metric]["values"][-1]


def arm_ids(root: Path, ids=range(1, 5)) -> dict[str, list[str]]:
    """Arm label -> run ids (of ``ids``), read from run.json directly."""
    out: dict[str, list[str]] = {}
    for i in ids:
        run = json.loads((root / str(i) / "run.json").read_text())
        out.setdefault(" ".join(run["meta"]["named_configs"]), []).append(str(i))
    return out


def compare(*args: str, capsys) -> tuple[int, str, str]:
    """``codeit compare ARGS`` in-process: (exit status, stdout, stderr)."""
    code = cli.main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# ------------------------------------------------------------------------------------------ table


@pytest.mark.slow
def test_table_numbers_are_the_means_and_stds_of_metrics_json(root, tmp_path, capsys):
    code, out, _ = compare("1-4", "--runs-dir", str(root), "--metrics", *METRICS, "--out", str(tmp_path),
                           capsys=capsys)
    assert code == 0
    ids = arm_ids(root)
    assert ids == {BASE: ["1", "2"], A6: ["3", "4"]}
    rows = read_csv(tmp_path / "compare.csv")
    assert [r["arm"] for r in rows] == [BASE, A6]
    for row in rows:
        assert row["runs"] == "2" and row["seeds"] == "1 2" and row["run_ids"] == " ".join(ids[row["arm"]])
        assert (row["iterations_min"], row["iterations_max"], row["statuses"]) == ("2", "2", "COMPLETED:2")
        for metric in METRICS:
            values = [finals(root, i, metric) for i in ids[row["arm"]]]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12), metric
            assert float(row[f"{metric}_std"]) == pytest.approx(statistics.stdev(values), rel=1e-12, abs=1e-15)
            assert row[f"{metric}_n"] == "2"
    # the check has teeth: the seeds' losses differ, and so do the arms' buffers (A6 has no mutated tasks)
    losses = [finals(root, i, "train_loss") for i in ids[BASE]]
    assert statistics.stdev(losses) > 0
    assert float(rows[0]["buffer_size_mean"]) > float(rows[1]["buffer_size_mean"])
    # the Markdown shows the same numbers, rounded
    line = next(x for x in out.splitlines() if x.startswith(f"| {BASE} |"))
    assert f"| {statistics.fmean(losses):.2f} ± {statistics.stdev(losses):.2f} |" in line
    assert line.startswith(f"| {BASE} | 1, 2 | 2 | 2 | 0.00 ± 0.00 |")


@pytest.mark.slow
def test_outputs_are_written_and_parse(root, tmp_path, capsys):
    code, out, err = compare("1-4", "--runs-dir", str(root), "--metrics", *METRICS, "--out", str(tmp_path),
                             capsys=capsys)
    assert code == 0 and str(tmp_path / "compare.png") in err
    assert (tmp_path / "compare.md").read_text() == out
    runs = read_csv(tmp_path / "runs.csv")
    assert [(r["id"], r["arm"], r["seed"], r["status"]) for r in runs] == [
        ("1", BASE, "1", "COMPLETED"), ("2", BASE, "2", "COMPLETED"), ("3", A6, "1", "COMPLETED"),
        ("4", A6, "2", "COMPLETED")]
    for r in runs:
        assert float(r["train_loss"]) == finals(root, r["id"], "train_loss")
    from matplotlib.image import imread

    pixels = imread(tmp_path / "compare.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600


@pytest.mark.slow
def test_curves_are_the_per_iteration_means_with_a_band(root):
    runs, _ = read_file_runs(root)
    comparison = compare_runs([r for r in runs if r.number <= 4], metrics=["train_loss", "buffer_size"])
    fig = curves_figure(comparison)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["train_loss", "buffer_size"]
    for label, ids in arm_ids(root).items():
        line = next(li for li in panels[0].get_lines() if li.get_label().startswith(label + " (n=2)"))
        assert list(line.get_xdata()) == [1, 2]
        series = [json.loads((root / i / "metrics.json").read_text())["train_loss"]["values"] for i in ids]
        assert list(line.get_ydata()) == pytest.approx([statistics.fmean(v) for v in zip(*series, strict=True)])
    assert len(panels[0].collections) == 2  # one ±std band per arm


@pytest.mark.slow
def test_a_partial_run_is_counted_and_marked(root, capsys):
    code, out, _ = compare("1-5", "--runs-dir", str(root), "--metrics", "train_loss", capsys=capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith(f"| {BASE} |"))
    assert line.startswith(f"| {BASE} | 1, 2, 3 | 3 | 1-2 |")
    assert line.endswith("| not all completed: run 5 FAILED; lengths differ: 1-2 iterations |")
    assert json.loads((root / "5" / "metrics.json").read_text())["train_loss"]["steps"] == [0]
    values = [finals(root, i, "train_loss") for i in ("1", "2", "5")]  # run 5: its one meta-iteration
    assert f"| {statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} |" in line
    a6 = next(x for x in out.splitlines() if x.startswith(f"| {A6} |"))
    assert a6.endswith("|  |")  # nothing to note
    assert "Notes:" not in out


@pytest.mark.slow
def test_broken_folders_and_resumed_runs_are_left_out_with_a_note(root, capsys):
    code, out, _ = compare("--runs-dir", str(root), "--metrics", "train_loss", capsys=capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith(f"| {BASE} |"))
    assert line.startswith(f"| {BASE} | 1, 2, 3 | 3 | 2 |") and line.endswith("|  |")  # run 6, not 5
    values = [finals(root, i, "train_loss") for i in ("1", "2", "6")]
    assert f"| {statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} |" in line
    notes = out.split("Notes:")[1].strip().splitlines()
    assert notes == [f"- left out {root / '98'}: run.json is not readable JSON (JSONDecodeError)",
                     f"- left out {root / '99'}: no metrics.json: no metrics yet (status COMPLETED)",
                     "- left out run 5 (FAILED): run 6 resumed it and recorded its meta-iterations again"]


@pytest.mark.slow
def test_control_difference_and_spread(root, tmp_path, capsys):
    code, out, _ = compare("1-4", "--runs-dir", str(root), "--metrics", *METRICS, "--control", BASE,
                           "--out", str(tmp_path), capsys=capsys)
    assert code == 0
    control, arm = read_csv(tmp_path / "compare.csv")
    assert (control["control"], arm["control"]) == ("True", "False")
    assert control["train_loss_diff"] == "" and control["train_loss_verdict"] == ""
    ids = arm_ids(root)
    for metric in METRICS:
        a = [finals(root, i, metric) for i in ids[A6]]
        c = [finals(root, i, metric) for i in ids[BASE]]
        diff = statistics.fmean(a) - statistics.fmean(c)
        spread = statistics.stdev(a) + statistics.stdev(c)
        assert float(arm[f"{metric}_diff"]) == pytest.approx(diff, abs=1e-12)
        assert float(arm[f"{metric}_spread"]) == pytest.approx(spread, abs=1e-12)
        verdict = "higher" if diff > spread else "lower" if diff < -spread else "within spread"
        assert arm[f"{metric}_verdict"] == verdict, metric
    assert arm["solve_rate_cumulative_verdict"] == "within spread"  # 0 against 0
    assert arm["buffer_size_verdict"] == "lower"  # no mutated tasks in A6's buffer
    assert f"### Against the control `{BASE}`" in out
    line = next(x for x in out.splitlines() if x.startswith(f"| {A6} |") and "spread" in x)
    assert ": lower |" in line


# -------------------------------------------------------------------------------------- selection


@pytest.mark.slow
def test_selection_by_ids_named_configs_and_config(root, capsys):
    def arms(*args: str) -> list[str]:
        code, out, _ = compare(*args, "--runs-dir", str(root), "--metrics", "train_loss", capsys=capsys)
        assert code == 0, _
        return [x.split(" | ")[0][2:] + " x" + x.split(" | ")[2] for x in out.splitlines()
                if x.startswith("| smoke")]

    assert arms("1-2") == [f"{BASE} x2"]
    assert arms("1,3", "4") == [f"{BASE} x1", f"{A6} x2"]
    assert arms("--with", "a6_no_mutation") == [f"{A6} x2"]
    assert arms("--where", "init.mutated=0") == [f"{A6} x2"]
    assert arms("--where", "init.mutated!=0", "policy.model=tiny") == [f"{BASE} x3"]
    assert arms("--status", "failed") == [f"{BASE} x1"]  # run 5: its resumption is not selected
    assert arms("--status", "COMPLETED", "--with", "smoke") == [f"{BASE} x3", f"{A6} x2"]
    assert arms(str(root / "3"), str(root / "1")) == [f"{BASE} x1", f"{A6} x1"]
    code, out, _ = compare("--runs-dir", str(root), "--group-by", "init.mutated", "--metrics", "buffer_size",
                           capsys=capsys)
    assert code == 0
    assert [x.split(" | ")[0] for x in out.splitlines() if x.startswith("| init")] == [
        "| init.mutated=30", "| init.mutated=0"]


@pytest.mark.slow
def test_cli_prints_the_table_without_importing_torch(root):
    """The real command line in a fresh interpreter: the table on stdout, nothing heavy imported."""
    script = ("import sys; from codeit.cli import main; code = main(sys.argv[1:]); "
              "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'imported too much'; "
              "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", script, "compare", "1-4", "--runs-dir", str(root)],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("## 4 runs in 2 arms\n")
    assert f"| {BASE} | 1, 2 | 2 | 2 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0 ± 0 | 0 ± 0 | 0 ± 0 |" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["7-9"], "no runs matched in {root} (selection: ids 7-9)"),
    (["--metrics", "train_los"], "no selected run logged the metric 'train_los' (did you mean 'train_loss'?)"),
    (["--control", "smoke test_size a6"], "no arm 'smoke test_size a6' (did you mean"),
    (["--where", "policy.model"], "--where 'policy.model': expected KEY=VALUE"),
    (["3-1"], "empty run range '3-1'"),
    (["--group-by", "init.mutatd"], "--group-by 'init.mutatd': no selected run has this config key"),
])
@pytest.mark.slow
def test_user_errors_are_one_line(root, args, message, capsys):
    code, out, err = compare("--runs-dir", str(root), *args, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith("codeit compare: error: " + message.format(root=root)) and err.count("\n") == 1, err


def test_an_unreachable_database_is_a_user_error():
    with pytest.raises(UserError, match=r"MongoDB at mongodb://127\.0\.0\.1:\d+ \(database 'nothing'\) cannot "
                                        r"be read: ServerSelectionTimeoutError"):
        read_mongo_runs(f"127.0.0.1:{free_port()}:nothing", timeout_ms=300)


# ---------------------------------------------------------------------------------------- MongoDB


@pytest.mark.slow
@pytest.mark.mongo
def test_files_and_mongodb_give_the_same_comparison(mongo_db, tmp_path, capsys):
    url, db_name = mongo_db
    spec = f"{url}/{db_name}"
    record_runs(tmp_path / "runs", {"--mongo_db": spec})
    record_failed_run(tmp_path / "runs", {"--mongo_db": spec})
    capsys.readouterr()  # the runs' own output
    from_files, notes = read_file_runs(tmp_path / "runs")
    from_mongo, mongo_notes = read_mongo_runs(spec)
    assert notes == mongo_notes == []
    assert [r.id for r in from_mongo] == [r.id for r in from_files] == ["1", "2", "3", "4", "5"]
    assert [r.status for r in from_mongo] == ["COMPLETED"] * 4 + ["FAILED"]
    for f, m in zip(from_files, from_mongo, strict=True):
        assert (m.status, m.named_configs, m.seed, m.config_updates) == (f.status, f.named_configs, f.seed,
                                                                         f.config_updates)
        assert m.metrics == f.metrics and m.config == f.config

    tables = {}
    for name, source in [("files", ["--runs-dir", str(tmp_path / "runs")]), ("mongo", ["--mongo", spec])]:
        code, out, _ = compare(*source, "--metrics", *METRICS, "--control", BASE, "--out", str(tmp_path / name),
                               capsys=capsys)
        assert code == 0
        tables[name] = out
        assert (tmp_path / name / "compare.png").is_file()
    assert tables["mongo"] == tables["files"]
    assert f"| {BASE} (control) | 1, 2, 3 | 3 | 1-2 |" in tables["files"]
    assert "not all completed: run 5 FAILED; lengths differ: 1-2 iterations |" in tables["files"]
    assert (tmp_path / "mongo" / "compare.csv").read_text() == (tmp_path / "files" / "compare.csv").read_text()


def test_equal_means_from_different_runs_are_no_difference():
    # 1/22 and 3/22 against 3/22, 2/22 and 1/22: the same mean, whose float sums differ in the last bit
    from codeit.compare.arms import Difference, Stat

    arm, control = Stat.of([1 / 22, 3 / 22]), Stat.of([3 / 22, 2 / 22, 1 / 22])
    d = Difference.of(arm, control)
    assert d.diff == 0 and d.verdict == "within spread"
