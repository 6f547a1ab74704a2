"""End to end: two recorded runs, Omniboard started by scripts/omniboard, its HTTP API, a screenshot.

Needs the MongoDB-compatible server (see tests/services.py), node + npm (Omniboard is installed
into .omniboard/ on first use) and Chromium.  The screenshot of the run table with run 2's metric
plot is kept as evidence in ``runs/evidence/omniboard.png`` (or ``$CODEIT_EVIDENCE_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from services import REPO, Omniboard, png_size, screenshot
from tiny_experiment import expected_loss, make_experiment

from codeit.recording import make_observers

pytestmark = [pytest.mark.e2e, pytest.mark.mongo, pytest.mark.timeout(900)]

EVIDENCE_DIR = Path(os.environ.get("CODEIT_EVIDENCE_DIR") or REPO / "runs" / "evidence")

NAMED = {"small": {"lr": 0.5, "steps": 4, "width": 4}, "large": {"lr": 0.05, "steps": 6, "width": 32}}


@pytest.fixture
def recorded_runs(mongo_db, tmp_path):
    url, db_name = mongo_db
    ids = {}
    for named in NAMED:
        ex = make_experiment(make_observers(tmp_path / "runs", url, db_name=db_name))
        run = ex.run(named_configs=[named], options={"--capture": "sys"})
        assert run.status == "COMPLETED"
        ids[named] = run._id
    return url, db_name, ids


@pytest.fixture
def omniboard(recorded_runs):
    url, db_name, _ = recorded_runs
    board = Omniboard(f"{url.rstrip('/')}/{db_name}").start()
    yield board
    board.stop()


def test_omniboard_shows_both_runs_configs_and_metrics(recorded_runs, omniboard, tmp_path):
    _, db_name, ids = recorded_runs

    # the database Omniboard serves
    assert omniboard.get("database")["name"] == db_name

    # both runs, with their named configs' values
    runs = {r["_id"]: r for r in omniboard.get("Runs", select="_id,status,config,meta")}
    assert set(runs) == set(ids.values())
    for named, values in NAMED.items():
        run = runs[ids[named]]
        assert run["status"] == "COMPLETED"
        assert {k: run["config"][k] for k in values} == values
        assert run["meta"]["named_configs"] == [named]
        detail = omniboard.get(f"Runs/{ids[named]}")
        assert detail["config"]["width"] == values["width"]

    # their metrics, through the endpoint Omniboard's plots use
    for named, values in NAMED.items():
        metrics = omniboard.get("Metrics", query={"run_id": ids[named]})
        by_name = {m["name"]: m for m in metrics}
        assert set(by_name) == {"loss", "accuracy"}
        assert by_name["loss"]["steps"] == list(range(values["steps"]))
        assert by_name["loss"]["values"] == [expected_loss(values["lr"], s) for s in range(values["steps"])]

    # a metric column (the last loss) in the run table, added as Omniboard's "+/- Metric Columns" does
    column = omniboard.post("Omniboard.Metric.Columns",
                            {"name": "loss_last", "metric_name": "loss", "extrema": "last"})
    assert column["metric_name"] == "loss"

    # the run table (config and metric columns) with the "large" run's metric plot, in Chromium
    shot = tmp_path / "omniboard.png"
    large = ids["large"]
    menu_item = ("[...document.querySelectorAll('.dropdown-menu a')]"
                 ".filter(a => a.textContent.trim() === {name!r} && a.closest('.open, .show'))")
    show_hide = "[...document.querySelectorAll('button')].filter(b => b.textContent.trim() === 'Show/Hide Columns')"
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
        ("wait", "document.body.innerText.includes('COMPLETED') && document.body.innerText.includes('Loss Last')"),
        ("click", show_hide),
    ]
    # hide the columns that push the config and metric columns off the screen
    for name in ["Hostname", "Format", "Command", "Tags", "Notes", "Resources", "Heartbeat", "Stop Time",
                 "C Pause", "C Seed"]:
        steps.append(("click", menu_item.format(name=name)))
    steps += [
        ("click", show_hide),
        ("sleep", "300"),
        ("eval", cells_by_run),
        # the row's expand arrow: the detail view opens on its metric plot
        ("click", f"""[...document.querySelectorAll('.fixedDataTableRowLayout_rowWrapper')]
            .filter(r => [...r.querySelectorAll('.public_fixedDataTableCell_cellContent')]
                .some(c => c.textContent.trim() === '{large}'))
            .map(r => [...r.querySelectorAll('*')].find(e => e.children.length === 0
                && e.textContent.trim() === '\u25ba'))
            .filter(Boolean)"""),
        ("wait", f"document.body.innerText.includes('Details for: tiny (Id: {large})')"),
        ("wait", "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 2"),
        ("eval", "[...document.querySelectorAll('.js-plotly-plot .legendtext')].map(e => e.textContent)"),
        ("sleep", "500"),
    ]
    result = screenshot(omniboard.base, shot, steps)
    assert result.returncode == 0, f"screenshot failed:\n{result.stderr}\n{result.stdout}"
    table, legend = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]

    # what the page shows: both runs with their config values and last loss, the plot's two metrics
    shown = {int(row["Id"]): row for row in table if row.get("Id", "").isdigit()}
    assert set(shown) == set(ids.values()), table
    for named, values in NAMED.items():
        row = shown[ids[named]]
        assert row["Status"] == "COMPLETED"
        assert float(row["C Lr"]) == values["lr"] and int(row["C Width"]) == values["width"]
        assert float(row["Loss Last"]) == pytest.approx(expected_loss(values["lr"], values["steps"] - 1))
    assert sorted(legend) == ["accuracy", "loss"]

    width, height = png_size(shot)
    assert (width, height) == (1600, 1000)
    assert shot.stat().st_size > 40_000, "the screenshot looks blank"
    EVIDENCE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, EVIDENCE_DIR / "omniboard.png")
