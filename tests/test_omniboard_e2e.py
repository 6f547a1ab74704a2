"""End to end: two smoke runs of the CodeIt experiment recorded to MongoDB with Sacred's ``-m``,
Omniboard started by scripts/omniboard, its HTTP API, and its page in headless Chromium.

Needs the MongoDB-compatible server (see tests/services.py), node + npm (Omniboard is installed
into .omniboard/ on first use) and, for the page, Chromium: without it the page test is skipped
(a failure where the services are required, as in CI).  The page is checked as a browser first sees
it: named configs as tags, the key metrics as columns, the plot on the solve rates.  The screenshot
of the run table with one run's metric plot is kept as evidence in ``runs/evidence/omniboard.png``
(or ``$CODEIT_EVIDENCE_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from services import REPO, Omniboard, chromium_path, drop_database, png_size, screenshot, unavailable

from codeit.experiment import file_record_dir, make_experiment
from codeit.recording import OMNIBOARD_METRIC_COLUMNS, OMNIBOARD_PLOT_METRICS, OMNIBOARD_PLOT_SETTING

pytestmark = [pytest.mark.e2e, pytest.mark.mongo, pytest.mark.slow, pytest.mark.timeout(900)]

EVIDENCE_DIR = Path(os.environ.get("CODEIT_EVIDENCE_DIR") or REPO / "runs" / "evidence")

#: smaller than `smoke` (as in tests/test_experiment.py), so that two runs take well under a minute
TEST_SIZE = {"n_iterations": 2, "data": {"n_search_tasks": 6}, "init": {"mutated": 30},
             "train": {"policy_samples": 48, "initial_samples": 32},
             "policy": {"n_samples": 2, "max_new_tokens": 32}, "execution": {"workers": 2}}
#: named config -> config values it sets (at TEST_SIZE)
NAMED = {"a1_no_exit": {"mutation_chunk": 15, "plugins": {"relabel": []}},
         "a3_no_priority": {"mutation_chunk": 0, "plugins": {"priority": ["uniform"]}}}
METRIC = "solve_rate_cumulative"
#: what comparing runs needs on first open: Omniboard's default metric columns and plotted metrics
KEY_METRICS = ["solve_rate", "solve_rate_cumulative", "solve_rate_policy_only", "solve_rate_policy_ever",
               "policy_best_demo_accuracy"]


@pytest.fixture(scope="module")
def recorded_runs(mongo_url, tmp_path_factory):
    """Two runs in a database of their own (shared by this module's tests, dropped at the end)."""
    db_name = f"t_omniboard_e2e_{uuid.uuid4().hex[:8]}"
    ex = make_experiment(file_root=tmp_path_factory.mktemp("omniboard") / "runs", use_env=False,
                         save_git_info=False)
    ids, folders = {}, {}
    try:
        for named in NAMED:
            run = ex.run(named_configs=["smoke", named], config_updates=TEST_SIZE,
                         options={"--capture": "sys", "--mongo_db": f"{mongo_url.rstrip('/')}/{db_name}"})
            assert run.status == "COMPLETED"
            ids[named] = run._id
            folders[named] = file_record_dir(run)
        yield mongo_url, db_name, ids, folders
    finally:
        drop_database(mongo_url, db_name)


@pytest.fixture(scope="module")
def omniboard(recorded_runs):
    url, db_name, _, _ = recorded_runs
    board = Omniboard(f"{url.rstrip('/')}/{db_name}").start()
    yield board
    board.stop()


@pytest.fixture
def chromium():
    path = chromium_path()
    if path is None:
        unavailable("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it): "
                    "the Omniboard page is not checked")
    return path


def test_omniboard_api_shows_both_runs_configs_and_metrics(recorded_runs, omniboard):
    _, db_name, ids, folders = recorded_runs

    # the database Omniboard serves
    assert omniboard.get("database")["name"] == db_name

    # both runs, with their named configs' values
    runs = {r["_id"]: r for r in omniboard.get("Runs", select="_id,status,config,meta,omniboard")}
    assert set(runs) == set(ids.values())
    for named, values in NAMED.items():
        run = runs[ids[named]]
        assert run["status"] == "COMPLETED"
        assert run["meta"]["named_configs"] == ["smoke", named]
        assert run["omniboard"]["tags"] == ["smoke", named]  # the run table's Tags column
        assert run["config"]["mutation_chunk"] == values["mutation_chunk"]
        for key, value in values["plugins"].items():
            assert run["config"]["plugins"][key] == value
        detail = omniboard.get(f"Runs/{ids[named]}")
        assert detail["config"]["policy"]["model"] == "tiny"
        assert {a["name"] for a in detail["artifacts"]} >= {"performance.csv", "solve_rate.png", "solutions_1.json"}

    # their metrics, through the endpoint Omniboard's plots use, equal to the file record's
    for named in NAMED:
        by_name = {m["name"]: m for m in omniboard.get("Metrics", query={"run_id": ids[named]})}
        on_file = json.loads((folders[named] / "metrics.json").read_text())
        assert set(by_name) == set(on_file)
        assert {"solve_rate", METRIC, "solve_rate_policy_only", "buffer_size", "programs_per_second"} <= set(by_name)
        for name in (METRIC, "buffer_size", "new_policy_entries"):
            assert by_name[name]["steps"] == [0, 1]
            assert by_name[name]["values"] == on_file[name]["values"]
    a1 = {m["name"]: m for m in omniboard.get("Metrics", query={"run_id": ids["a1_no_exit"]})}
    assert a1["new_policy_entries"]["values"] == [0, 0]

    # the database's Omniboard defaults: metric columns, the plot's metrics
    columns = omniboard.get("Omniboard.Metric.Columns")
    assert [(c["name"], c["metric_name"], c["extrema"]) for c in columns] == \
        [(c["name"], c["metric_name"], c["extrema"]) for c in OMNIBOARD_METRIC_COLUMNS]
    (setting,) = omniboard.get("Omniboard.Settings", query={"name": OMNIBOARD_PLOT_SETTING})
    assert setting["value"] == list(OMNIBOARD_PLOT_METRICS) == KEY_METRICS


def test_omniboard_page_defaults_on_first_open(recorded_runs, omniboard, chromium, tmp_path):
    """A browser's first visit (a fresh profile): named configs as tags, the key metrics as columns,
    and a run's plot showing those metrics only -- nothing hidden, added or selected by hand."""
    _, _, ids, folders = recorded_runs
    shot = tmp_path / "omniboard.png"
    shown_run = ids["a1_no_exit"]
    cells_by_run = """(() => {
        const rows = [...document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper')].map(r =>
            [...r.querySelectorAll('.public_fixedDataTableCell_cellContent')]
                .filter(c => !c.parentElement.closest('.public_fixedDataTableCell_cellContent'))
                .map(c => c.textContent.trim()));
        const header = rows[0];
        return rows.slice(1).map(r => Object.fromEntries(header.map((h, i) => [h, r[i]])));
    })()"""
    # the table renders the columns in view only: scroll right to the metric columns (after Stop Time)
    def scroll(dx: int) -> str:
        return ("(document.querySelector('.fixedDataTableLayout_rowsContainer').dispatchEvent("
                f"new WheelEvent('wheel', {{deltaX: {dx}, bubbles: true, cancelable: true}})), true)")

    headers = "[...document.querySelectorAll('.public_fixedDataTable_header .public_fixedDataTableCell_cellContent')]"
    steps = [
        ("wait", "document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper').length >= 3"),
        ("wait", "document.body.innerText.includes('COMPLETED') && document.body.innerText.includes('Tags')"),
        ("eval", cells_by_run),
        ("eval", scroll(1100)),
        ("wait", f"{headers}.some(h => h.textContent.trim() === 'Solve Rate Policy Only')"),
        ("sleep", "300"),
        ("eval", cells_by_run),
        ("eval", scroll(1100)),  # the last key metrics' columns
        ("wait", f"{headers}.some(h => h.textContent.trim() === 'Policy Best Demo Accuracy')"),
        ("sleep", "300"),
        ("eval", cells_by_run),
        ("eval", scroll(-2200)),  # back, as a user opens a run
        ("wait", f"{headers}.some(h => h.textContent.trim() === 'Tags')"),
        # the row's expand arrow: the detail view opens on its metric plot
        ("click", f"""[...document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper')]
            .filter(r => [...r.querySelectorAll('.public_fixedDataTableCell_cellContent')]
                .some(c => c.textContent.trim() === '{shown_run}'))
            .map(r => [...r.querySelectorAll('*')].find(e => e.children.length === 0
                && e.textContent.trim() === '\u25ba'))
            .filter(Boolean)"""),
        ("wait", f"document.body.innerText.includes('Details for: codeit (Id: {shown_run})')"),
        ("wait", "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 1"),
        ("sleep", "500"),
        ("eval", "[...document.querySelectorAll('.js-plotly-plot .legendtext')].map(e => e.textContent)"),
        ("eval", "document.querySelector('#plot-metric-names button').textContent.trim()"),
    ]
    result = screenshot(omniboard.base, shot, steps)
    assert result.returncode == 0, f"screenshot failed:\n{result.stderr}\n{result.stdout}"
    first_view, _, scrolled, _, scrolled_more, _, legend, selected = [
        json.loads(line) for line in result.stdout.strip().splitlines()[-8:]]

    # named configs: the Tags column, in view on first open
    tags = {int(row["Id"]): row["Tags"] for row in first_view if row.get("Id", "").isdigit()}
    assert tags == {ids[named]: "smoke" + named for named in NAMED}, first_view  # chips' texts, joined
    # the key metrics' columns hold each run's last values
    shown = {int(row["Id"]): dict(row) for row in scrolled if row.get("Id", "").isdigit()}
    for row in scrolled_more:
        if row.get("Id", "").isdigit() and int(row["Id"]) in shown:
            shown[int(row["Id"])].update({k: v for k, v in row.items() if v})
    assert set(shown) == set(ids.values()), scrolled
    for named in NAMED:
        on_file = json.loads((folders[named] / "metrics.json").read_text())
        for metric in KEY_METRICS:
            header = metric.replace("_", " ").title()
            assert float(shown[ids[named]][header]) == pytest.approx(on_file[metric]["values"][-1]), (header, scrolled)
    # the plot selects the solve rates, not the ~40 metrics with throughput in the thousands
    assert sorted(legend) == sorted(KEY_METRICS), legend
    assert selected == f"{len(KEY_METRICS)} selected"

    width, height = png_size(shot)
    assert (width, height) == (1600, 1000)
    assert shot.stat().st_size > 40_000, "the screenshot looks blank"
    EVIDENCE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, EVIDENCE_DIR / "omniboard.png")
