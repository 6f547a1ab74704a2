"""End to end: two smoke runs of the CodeIt experiment recorded to MongoDB with Sacred's ``-m``,
Omniboard started by scripts/omniboard, its HTTP API, and its page in headless Chromium.

Needs the MongoDB-compatible server (see tests/services.py), node + npm (Omniboard is installed
into .omniboard/ on first use) and, for the page, Chromium: without it the page test is skipped
(a failure where the services are required, as in CI).  The screenshot of the run table with one
run's metric plot is kept as evidence in ``runs/evidence/omniboard.png`` (or ``$CODEIT_EVIDENCE_DIR``).
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

pytestmark = [pytest.mark.e2e, pytest.mark.mongo, pytest.mark.timeout(900)]

EVIDENCE_DIR = Path(os.environ.get("CODEIT_EVIDENCE_DIR") or REPO / "runs" / "evidence")

#: smaller than `smoke` (as in tests/test_experiment.py), so that two runs take well under a minute
TEST_SIZE = {"n_iterations": 2, "data": {"n_search_tasks": 6}, "init": {"mutated": 30},
             "train": {"policy_samples": 48, "initial_samples": 32},
             "policy": {"n_samples": 2, "max_new_tokens": 32}, "execution": {"workers": 2}}
#: named config -> config values it sets (at TEST_SIZE)
NAMED = {"a1_no_exit": {"mutation_chunk": 15, "plugins": {"relabel": []}},
         "a3_no_priority": {"mutation_chunk": 0, "plugins": {"priority": ["uniform"]}}}
METRIC = "solve_rate_cumulative"


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
    runs = {r["_id"]: r for r in omniboard.get("Runs", select="_id,status,config,meta")}
    assert set(runs) == set(ids.values())
    for named, values in NAMED.items():
        run = runs[ids[named]]
        assert run["status"] == "COMPLETED"
        assert run["meta"]["named_configs"] == ["smoke", named]
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


def test_omniboard_page_shows_runs_and_metric_plot(recorded_runs, omniboard, chromium, tmp_path):
    _, _, ids, folders = recorded_runs

    # a metric column (the last cumulative solve rate) in the run table, as "+/- Metric Columns" adds it
    column = omniboard.post("Omniboard.Metric.Columns", {"name": "solved_last", "metric_name": METRIC,
                                                         "extrema": "last"})
    assert column["metric_name"] == METRIC

    # the run table (a config column and the metric column) with one run's metric plot, in Chromium
    shot = tmp_path / "omniboard.png"
    shown_run = ids["a1_no_exit"]
    show_hide = "[...document.querySelectorAll('button')].filter(b => b.textContent.trim() === 'Show/Hide Columns')"
    menu_item = ("[...document.querySelectorAll('.dropdown-menu a')]"
                 ".filter(a => a.textContent.trim() === {name!r} && a.closest('.open, .show'))")
    # hide the columns that push the config and metric columns of interest off the screen
    hide = ["Hostname", "Format", "Command", "Tags", "Notes", "Resources", "Heartbeat", "Result", "Stop Time",
            "C Pipeline", "C N Iterations", "C Threads", "C Data", "C Init", "C Train", "C Buffer", "C Policy",
            "C Mutation", "C Execution", "C Plugins", "C Checkpoint", "C Artifacts", "C Resume From",
            "C Work Dir", "C Seed"]
    cells_by_run = """(() => {
        const rows = [...document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper')].map(r =>
            [...r.querySelectorAll('.public_fixedDataTableCell_cellContent')]
                .filter(c => !c.parentElement.closest('.public_fixedDataTableCell_cellContent'))
                .map(c => c.textContent.trim()));
        const header = rows[0];
        return rows.slice(1).map(r => Object.fromEntries(header.map((h, i) => [h, r[i]])));
    })()"""
    steps = [
        ("wait", "document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper').length >= 3"),
        ("wait", "document.body.innerText.includes('COMPLETED') && document.body.innerText.includes('Solved Last')"),
        ("click", show_hide),
        *[("click", menu_item.format(name=name)) for name in hide],
        ("click", show_hide),
        # the table re-renders after the columns change (slowly on a busy machine): wait for the rows
        ("wait", f"{cells_by_run}.filter(r => /^[0-9]+$/.test(r['Id'] || '')).length >= {len(ids)}"),
        ("sleep", "500"),
        ("eval", cells_by_run),
        # the row's expand arrow: the detail view opens on its metric plot
        ("click", f"""[...document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper')]
            .filter(r => [...r.querySelectorAll('.public_fixedDataTableCell_cellContent')]
                .some(c => c.textContent.trim() === '{shown_run}'))
            .map(r => [...r.querySelectorAll('*')].find(e => e.children.length === 0
                && e.textContent.trim() === '\u25ba'))
            .filter(Boolean)"""),
        ("wait", f"document.body.innerText.includes('Details for: codeit (Id: {shown_run})')"),
        ("wait", "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 2"),
        ("eval", "[...document.querySelectorAll('.js-plotly-plot .legendtext')].map(e => e.textContent)"),
        ("sleep", "500"),
    ]
    result = screenshot(omniboard.base, shot, steps)
    assert result.returncode == 0, f"screenshot failed:\n{result.stderr}\n{result.stdout}"
    table, legend = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]

    # what the page shows: both runs with their config value and last solve rate, the plot's metrics
    shown = {int(row["Id"]): row for row in table if row.get("Id", "").isdigit()}
    assert set(shown) == set(ids.values()), table
    for named, values in NAMED.items():
        row = shown[ids[named]]
        on_file = json.loads((folders[named] / "metrics.json").read_text())
        assert row["Status"] == "COMPLETED"
        assert "C Mutation Chunk" in row, list(row)
        assert int(row["C Mutation Chunk"]) == values["mutation_chunk"]
        assert float(row["Solved Last"]) == pytest.approx(on_file[METRIC]["values"][-1])
    assert METRIC in legend and "buffer_size" in legend

    width, height = png_size(shot)
    assert (width, height) == (1600, 1000)
    assert shot.stat().st_size > 40_000, "the screenshot looks blank"
    EVIDENCE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, EVIDENCE_DIR / "omniboard.png")
