"""The dashboard against a workspace filled by real `run()` calls, over real HTTP, and in a
real headless Chromium (skipped with a message where Chromium is absent)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import (
    Filled,
    Server,
    chromium,
    fill_workspace,
    headless,
    start_server,
    stop_server,
)

import nirs4all_store as n4s
from nirs4all_store.workbench import plots
from nirs4all_store.workbench.dashboard import app as dashboard_app


@pytest.fixture(scope="session")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    return fill_workspace(tmp_path_factory.mktemp("dashboard") / "workspace")


@pytest.fixture(scope="session")
def server(filled: Filled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = start_server(filled.path, log)
    yield running
    stop_server(running)


DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
STAGED_REPORT = Path(__file__).resolve().parents[2] / "nirs4all_store/workbench/report.py"


def _store(filled: Filled) -> n4s.WorkspaceStore:
    # The dashboard holds the DuckDB file only while it answers a request.
    return n4s.WorkspaceStore(filled.path, lock_timeout=30)


def _avg_val(store: n4s.WorkspaceStore, chain_id: str) -> dict:
    row = store.query_predictions(chain_id=chain_id, fold_id="avg", partition="val").to_pylist()
    return store.get_prediction(row[0]["prediction_id"], load_arrays=True)


# -- runs ------------------------------------------------------------------------------------


def test_runs_page_lists_runs_newest_first_with_status_and_counts(server: Server, filled: Filled):
    page = server.get("/runs")
    assert page.status == 200
    for label in ("sweep", "rerun", "classes", "stopped"):
        assert filled.runs[label] in page.text
    assert "status-interrupted" in page.text and "status-completed" in page.text
    listed = server.get("/api/runs").json()
    order = [r["run_id"] for r in listed["runs"]]
    labels = ("stopped", "classes", "rerun", "sweep")
    assert order == [filled.runs[k] for k in labels]
    assert listed["paging"]["total"] == 4
    sweep = listed["runs"][3]
    assert (sweep["n_pipelines"], sweep["n_failed"], sweep["status"]) == (4, 1, "completed")
    assert sweep["datasets"] == ["synthetic_regression"] and sweep["duration_ms"] > 0
    with _store(filled) as store:
        best = store.top_predictions(1, run_id=filled.runs["sweep"], fold_id="avg").to_pylist()
    assert math.isclose(sweep["best_cv"], best[0]["val_score"])


def test_runs_are_paged_and_filtered_by_status(server: Server, filled: Filled):
    second = server.get("/api/runs?per_page=1&page=2").json()
    assert [r["run_id"] for r in second["runs"]] == [filled.runs["classes"]]
    assert second["paging"] == {"page": 2, "per_page": 1, "total": 4, "pages": 4}
    stopped = server.get("/api/runs?status=interrupted").json()["runs"]
    assert [r["run_id"] for r in stopped] == [filled.runs["stopped"]]
    assert server.get("/api/runs?status=failed").json()["runs"] == []
    assert len(server.get("/api/runs?status=completed").json()["runs"]) == 3


# -- run -------------------------------------------------------------------------------------


def test_run_page_shows_the_leaderboard_best_chain_first(server: Server, filled: Filled):
    run_id = filled.runs["sweep"]
    page = server.get(f"/runs/{run_id}")
    assert page.status == 200
    assert filled.best["sweep"] in page.text
    assert "n_components" in page.text  # the failed pipeline's error
    board = server.get(f"/api/runs/{run_id}").json()["board"]
    rows = board["rows"]
    assert rows[0]["chain_id"] == filled.best["sweep"]
    assert board["total"] == 3 and board["metric"] == "rmse" and board["ascending"]
    assert [r["score"] for r in rows] == sorted(r["score"] for r in rows)
    with _store(filled) as store:
        preds = store.query_predictions(chain_id=rows[0]["chain_id"]).to_pylist()
    folds = sorted(
        (p["fold_id"], p["val_score"])
        for p in preds
        if p["partition"] == "val" and p["fold_id"].startswith("fold_")
    )
    assert [(f["fold_id"], f["score"]) for f in rows[0]["folds"]] == folds
    assert math.isclose(rows[0]["fold_sd"], statistics.stdev(s for _, s in folds))
    refit = next(p for p in preds if (p["fold_id"], p["partition"]) == ("fold_final", "test"))
    assert math.isclose(rows[0]["refit_test"], refit["test_score"])


def test_leaderboard_metric_sort_filter_and_pages(server: Server, filled: Filled):
    base = f"/api/runs/{filled.runs['sweep']}"
    by_r2 = server.get(base + "?metric=r2").json()["board"]
    assert by_r2["metric"] == "r2" and not by_r2["ascending"]
    r2 = [r["score"] for r in by_r2["rows"]]
    assert r2 == sorted(r2, reverse=True) and all(0 < s <= 1 for s in r2)
    models = [r["model_name"] for r in server.get(base + "?sort=model").json()["board"]["rows"]]
    assert models == sorted(models)
    snv = server.get(base + "?preprocessing=SNV").json()["board"]
    assert [r["preprocessing"] for r in snv["rows"]] == ["SNV"] and snv["total"] == 1
    ridge = server.get(base + "?model_class=sklearn.linear_model._ridge.Ridge").json()["board"]
    assert [r["model_name"] for r in ridge["rows"]] == ["Ridge()"]
    first = server.get(base).json()["board"]["rows"]
    second = server.get(base + "?per_page=1&page=2").json()["board"]["rows"]
    assert [r["chain_id"] for r in second] == [first[1]["chain_id"]]
    worst_first = server.get(base + "?order=desc").json()["board"]["rows"]
    assert [r["chain_id"] for r in worst_first] == [r["chain_id"] for r in reversed(first)]


# -- chain -----------------------------------------------------------------------------------


def test_chain_page_steps_artifacts_and_scores(server: Server, filled: Filled):
    chain_id = filled.best["sweep"]
    page = server.get(f"/chains/{chain_id}")
    assert page.status == 200
    with _store(filled) as store:
        chain = store.get_chain(chain_id)
        artifacts = [store.get_artifact(a) for a in chain["fold_artifacts"].values()]
    for step in chain["steps"]:
        assert step["operator_class"] in page.text
    for artifact in artifacts:
        assert artifact["content_hash"][:16] in page.text
    shown = server.get(f"/api/chains/{chain_id}").json()
    sizes = {a["artifact_id"]: a["size_bytes"] for a in shown["artifacts"]}
    assert all(sizes[a["artifact_id"]] == a["size_bytes"] for a in artifacts)
    grid = {(s["fold_id"], s["partition"]) for s in shown["scores"]}
    assert {("fold_0", "val"), ("avg", "val"), ("fold_final", "test")} <= grid
    assert f"/chains/{chain_id}/bundle.n4a" in page.text


def test_plot_data_holds_the_stored_arrays(server: Server, filled: Filled):
    chain_id = filled.best["sweep"]
    answer = server.get(f"/api/chains/{chain_id}/plots").json()
    with _store(filled) as store:
        stored = _avg_val(store, chain_id)
    series = answer["series"][0]
    assert series["prediction_id"] == stored["prediction_id"]
    np.testing.assert_array_equal(series["y_true"], stored["y_true"])
    np.testing.assert_array_equal(series["y_pred"], stored["y_pred"])
    points = answer["figures"]["pred_obs"]["data"][1]  # after the 1:1 line
    np.testing.assert_array_equal(points["x"], stored["y_true"])
    np.testing.assert_array_equal(points["y"], stored["y_pred"])
    np.testing.assert_array_equal(points["customdata"], stored["sample_indices"])
    assert "sample %{customdata}" in points["hovertemplate"]
    assert math.isclose(series["stats"]["rmse"], stored["val_score"], rel_tol=1e-9)
    assert {"r2", "bias", "rpd"} <= set(series["stats"])
    residuals = answer["figures"]["residuals"]["data"][1]
    np.testing.assert_allclose(residuals["y"], stored["y_pred"] - stored["y_true"])


def test_classification_chain_has_a_confusion_matrix(server: Server, filled: Filled):
    figures = server.get(f"/api/chains/{filled.best['classes']}/plots").json()["figures"]
    heatmap = figures["confusion"]["data"][0]
    assert heatmap["type"] == "heatmap"
    assert sum(map(sum, heatmap["z"])) == 90  # every training sample once, out of fold
    assert "pred_obs" not in figures


def test_bundle_download_predicts_like_the_store(server: Server, filled: Filled, tmp_path: Path):
    chain_id = filled.best["sweep"]
    answer = server.get(f"/chains/{chain_id}/bundle.n4a")
    assert answer.status == 200
    assert ".n4a" in answer.headers["content-disposition"]
    path = tmp_path / "best.n4a"
    path.write_bytes(answer.body)
    X = filled.datasets["regression"].X_test
    with _store(filled) as store:
        expected = store.replay_chain(chain_id, X)
    np.testing.assert_allclose(n4s.predict(path, X), expected)


# -- compare, spectra, workspace --------------------------------------------------------------


def test_compare_best_per_dataset_and_family_over_runs(server: Server, filled: Filled):
    page = server.get("/api/compare").json()
    assert set(page["datasets"]) == {"synthetic_regression", "synthetic_classification"}
    assert page["best_of"]["synthetic_regression"] in (filled.runs["sweep"], filled.runs["rerun"])
    family = "MinMaxScaler|PLSRegression(n_components=4)"
    assert family in page["families"]
    trend = server.get(f"/api/compare?family={family}").json()
    assert [t["run"]["run_id"] for t in trend["trend"]] == [
        filled.runs["sweep"],
        filled.runs["rerun"],
    ]
    assert trend["figures"]["trend"]["data"][0]["y"] == [t["score"] for t in trend["trend"]]
    assert server.get(f"/compare?family={family}").status == 200


def test_spectra_page_mean_and_preprocessed_spectra(server: Server, filled: Filled):
    answer = server.get(f"/api/runs/{filled.runs['sweep']}/spectra?n=10").json()
    with _store(filled) as store:  # the page shows the preprocessing of the run's best chain
        best = store.top_predictions(1, run_id=filled.runs["sweep"], fold_id="avg").to_pylist()
        chain = store.get_chain(best[0]["chain_id"])
    assert answer["available"] and answer["steps"] == [chain["preprocessings"]]
    assert answer["steps"][0] in ("MinMaxScaler", "StandardScaler", "SNV")
    assert "generated again" in answer["source_note"] and "WARNING" not in answer["source_note"]
    mean = answer["figures"]["mean_raw"]["data"][2]["y"]
    np.testing.assert_allclose(mean, filled.datasets["regression"].X_train.mean(axis=0))
    assert len(answer["figures"]["sample_raw"]["data"]) == 10
    assert {"mean_pre", "sample_pre"} <= set(answer["figures"])
    assert server.get(f"/runs/{filled.runs['sweep']}/spectra").status == 200
    assert server.get(f"/runs/{filled.runs['stopped']}/spectra").status == 404


def test_workspace_status_and_verify(server: Server, filled: Filled):
    status = server.get("/api/workspace").json()["status"]
    assert status["backend"] == "duckdb" and status["schema_revision"]
    counts = status["counts"]
    assert (counts["runs"], counts["pipelines"], counts["pipelines_failed"]) == (4, 8, 1)
    page = server.get("/workspace")
    assert (
        "nirs4all-store verify" in page.text
        and "delete" not in page.text.lower().split("maintenance")[0]
    )
    checked = server.get("/workspace/verify", method="POST")  # 303 to /workspace, followed
    assert checked.status == 200 and "all well" in checked.text
    assert server.get("/api/workspace").json()["verify"]["ok"] is True


def test_workspace_shows_the_verify_recorded_by_another_session(server: Server, filled: Filled):
    """A verify() run from code or the CLI (a writable store records it) is the one shown
    once it is newer than the dashboard's own check."""
    with n4s.WorkspaceStore(filled.path, lock_timeout=30) as store:
        store.verify()
        recorded = store.last_verify()
    assert recorded is not None
    shown = server.get("/api/workspace").json()["verify"]
    assert shown["repair"] is False and shown["ok"] is True  # only the record has "repair"
    assert "last check" in server.get("/workspace").text


# -- bad input, binding, offline -------------------------------------------------------------

BAD = [
    ("/runs/nope", 404, "unknown run"),
    ("/chains/nope", 404, "unknown chain"),
    ("/chains/nope/bundle.n4a", 404, "unknown chain"),
    ("/api/runs/nope", 404, "unknown run"),
    ("/api/chains/nope/plots", 404, "unknown chain"),
    ("/api/token?run_id=nope", 404, "unknown run"),
    ("/no/such/page", 404, "no page at"),
    ("/runs?page=abc", 400, "page must be an integer"),
    ("/runs?per_page=0", 400, "per_page must be between"),
    ("/api/runs?status=bogus", 400, "status must be one of"),
    ("/runs/{sweep}?metric=bogus", 400, "metric must be one of"),
    ("/runs/{sweep}?sort=bogus", 400, "sort must be one of"),
    ("/api/runs/{sweep}?order=up", 400, "order must be one of"),
    ("/runs/{sweep}/spectra?dataset=bogus", 400, "dataset must be one of"),
    ("/runs/{sweep}/spectra?n=5000", 400, "n must be between"),
    ("/compare?family=bogus", 400, "family"),
    ("/compare?metric=bogus", 400, "metric must be one of"),
]


@pytest.mark.parametrize(("path", "code", "reason"), BAD)
def test_bad_input_gives_a_page_with_the_reason(
    server: Server, filled: Filled, path: str, code: int, reason: str
):
    answer = server.get(path.format(sweep=filled.runs["sweep"]))
    assert answer.status == code
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    if path.startswith("/api/"):
        assert reason in answer.json()["detail"]
    else:
        assert reason in answer.text.replace("&#39;", "'") and "<html" in answer.text


def test_method_and_host_are_checked(server: Server):
    assert server.get("/runs", method="POST").status == 405
    assert server.get("/runs", headers={"Host": "evil.example:80"}).status == 400


def test_binds_loopback_by_default_and_says_so(server: Server):
    assert inspect.signature(dashboard_app.serve).parameters["host"].default == "127.0.0.1"
    port = server.base.rsplit(":", 1)[1]
    log = server.stderr()
    assert f"listening on http://127.0.0.1:{port}/" in log and "this machine only" in log


def test_pages_work_offline(server: Server, filled: Filled):
    js = server.get("/static/vendor/plotly.min.js")
    assert js.status == 200
    assert js.body == dashboard_app.plotly_js_path().read_bytes()
    page = server.get(f"/chains/{filled.best['sweep']}")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)]


# -- the static report shares the figures -----------------------------------------------------


def test_report_figures_come_from_the_shared_plot_code(server: Server, filled: Filled):
    answer = server.get(f"/api/chains/{filled.best['sweep']}/plots").json()
    series = [
        plots.Series.of(s["label"], s["y_true"], s["y_pred"], s["sample_indices"])
        for s in answer["series"]
    ]
    figure = plots.pred_obs_figure(series, "title")
    assert plots.to_json(figure["data"]) == plots.to_json(answer["figures"]["pred_obs"]["data"])
    pytest.importorskip("matplotlib")
    png = plots.figure_png(figure)
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def _report_module():
    """The report that draws the shared figures (the staged file until it lands)."""
    landed = importlib.import_module("nirs4all_store.workbench.report")
    if "plots" in vars(landed) or not STAGED_REPORT.is_file():
        return landed
    spec = importlib.util.spec_from_file_location("n4s_staged_report", STAGED_REPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_static_report_draws_the_dashboard_figures(filled: Filled, tmp_path: Path):
    pytest.importorskip("matplotlib")
    report = _report_module()
    with _store(filled) as store:
        path = report.write_report(store, filled.runs["sweep"], tmp_path / "sweep.html")
        classes = report.write_report(store, filled.runs["classes"], tmp_path / "classes.html")
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "RPD" in page and "bias" in page and filled.best["sweep"] in page
    assert "accuracy" in classes.read_text()


# -- in the browser --------------------------------------------------------------------------

BROWSER_PAGES = [
    ("run", "/runs/{sweep}", ["plot-folds"]),
    ("chain", "/chains/{best}", ["plot-pred_obs", "plot-residuals", "plot-folds"]),
    (
        "classification",
        "/chains/{best_classes}",
        ["plot-confusion", "plot-confusion_test", "plot-folds"],
    ),
    (
        "spectra",
        "/runs/{sweep}/spectra",
        ["plot-mean_raw", "plot-sample_raw", "plot-mean_pre", "plot-sample_pre"],
    ),
    ("compare", "/compare?family=StandardScaler%7CRidge%28%29", ["plot-trend"]),
    ("runs", "/runs", []),
    ("workspace", "/workspace", []),
]


def _format(path: str, filled: Filled) -> str:
    return path.format(
        sweep=filled.runs["sweep"], best=filled.best["sweep"], best_classes=filled.best["classes"]
    )


@pytest.mark.parametrize(("name", "path", "expected"), BROWSER_PAGES)
def test_plots_render_in_chromium_without_errors(
    server: Server, filled: Filled, tmp_path: Path, name: str, path: str, expected: list[str]
):
    dom, console = headless(server.base + _format(path, filled), tmp_path)
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no DOM from Chromium for {name}: {console[-2000:]}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-js-errors") == "[]", attrs.get("data-js-errors")
    assert attrs.get("data-plots-done") == "1"
    assert sorted(attrs.get("data-plots-rendered", "").split()) == sorted(expected)
    for plot_id in expected:
        section = dom.split(f'id="{plot_id}"', 1)[1].split('id="plot-', 1)[0]
        assert "main-svg" in section, f"{plot_id} has no drawn SVG"
    if "plot-pred_obs" in expected:
        section = dom.split('id="plot-pred_obs"', 1)[1]
        assert section.count('class="point') >= 90  # every out-of-fold sample is drawn
    messages = [line for line in console.splitlines() if ":CONSOLE" in line]
    assert messages == [], messages


@pytest.mark.parametrize(("name", "path"), [("run", "/runs/{sweep}"), ("chain", "/chains/{best}")])
def test_screenshots_for_the_docs(
    server: Server, filled: Filled, tmp_path: Path, name: str, path: str
):
    """Screenshots of the run and chain pages; NIRS4ALL_UPDATE_SCREENSHOTS=1 writes them to
    docs/images/ (as docs/dashboard.md and the README show them)."""
    if chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): no screenshot")
    folder = DOCS_IMAGES if os.environ.get("NIRS4ALL_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"dashboard-{name}.png"
    headless(server.base + _format(path, filled), tmp_path, screenshot=target)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
