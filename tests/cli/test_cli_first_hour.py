"""The command line as a newcomer meets it (issue 18): it refuses a mistyped workspace,
takes back every id it prints, ranks by any stored score, fits the terminal, asks before
deleting, prints absolute paths, and one path rule holds for the API and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import pty
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nirs4all_store import WorkspaceStore
from nirs4all_store.cli.main import main
from nirs4all_store.cli.parser import build_parser
from nirs4all_store.cli.tables import render
from nirs4all_store.workbench.training.datasets import synthetic_nirs


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo run (regression, rmse) plus a classification run in one workspace."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from nirs4all_store.workbench.training import run

    folder = tmp_path_factory.mktemp("first-hour") / "workspace"
    argv = ["demo", "--samples", "60", "--wavelengths", "40", "--cv", "3", "-w", str(folder)]
    assert main([*argv, "--json"]) == 0
    data = synthetic_nirs(40, 20, task="classification", seed=1)
    with run([StandardScaler(), LogisticRegression(max_iter=500)], data, folder, cv=3, verbose=0):
        pass
    return folder


def _runs(capsys: pytest.CaptureFixture[str], ws: Path) -> list[dict]:
    code, out, _ = cli(capsys, "runs", "--json", "-w", str(ws))
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["verify"],
        ["top"],
        ["show", "abc"],
        ["gc", "--dry-run"],
        ["vacuum"],
        ["export-predictions"],
        ["delete-run", "abc", "--yes"],
        ["report", "abc"],
        ["ui"],
    ],
)
def test_reading_commands_refuse_a_missing_workspace_and_name_the_nearest(
    ws: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    typo = ws.parent / "workspaec"
    code, out, err = cli(capsys, *argv, "--workspace", str(typo))
    assert code == 1 and out == ""
    assert f"no workspace at {typo}" in err and f"Did you mean --workspace {ws}" in err
    assert not typo.exists()  # nothing created


def test_missing_workspace_error_is_json_on_stderr_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "runs", "--json", "-w", str(tmp_path / "nope"))
    error = json.loads(err)
    assert code == 1 and out == "" and error["type"] == "CliError" and error["command"] == "runs"
    assert "no workspace at" in error["error"]


def test_demo_creates_the_workspace_and_explains_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new ws"
    code, out, err = cli(capsys, "demo", "--samples", "40", "--wavelengths", "30", "--cv", "2",
                         "-w", str(target))  # fmt: skip
    assert code == 0, err
    assert f"created a new workspace at {target}" in err
    lines = out[out.index("Workspace:") :].splitlines()
    assert lines[0].startswith(f"Workspace: {target}")
    assert lines[1].startswith("Compared 9 ") and "2-fold cross-validation" in lines[1]
    assert lines[2].startswith('"val" is the cross-validated score')
    assert lines[3] == "Next:"
    quoted = f"'{target}'"  # the path has a space: each command pastes as printed
    assert all(f"--workspace {quoted}" in line for line in lines[4:]) and len(lines[4:]) == 3
    # distinct pipelines: no preprocessing that PLS's own scaling makes redundant
    assert "MinMaxScaler" not in out and "SavitzkyGolay" in out


def test_every_shown_id_is_accepted_back_as_a_prefix(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = ["-w", str(ws)]
    code, out, _ = cli(capsys, "top", "--json", *w)
    row = json.loads(out)["rows"][0]
    for option, value in (
        ("CHAIN", row["chain_id"]),
        ("--pipeline", row["pipeline_id"]),
        ("--prediction", row["prediction_id"]),
        ("--run", row["run_id"]),
    ):
        target = tmp_path / f"{option.strip('-')}.n4a"
        args = [value[:8]] if option == "CHAIN" else [option, value[:8]]
        code, out, err = cli(capsys, "export-chain", *args, "-o", str(target), *w)
        assert code == 0, err
        assert target.is_file() and f"to {target}" in out and row["chain_id"] in out
    code, out, _ = cli(capsys, "show", row["run_id"][:6], *w)
    assert code == 0 and row["run_id"] in out


def test_an_ambiguous_prefix_lists_the_candidates(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with WorkspaceStore(ws) as store:
        ids = store.query_predictions().column("prediction_id").to_pylist()
    first, count = Counter(i[0] for i in ids).most_common(1)[0]
    assert count > 1  # > 16 ids: two share a first character
    code, _, err = cli(capsys, "export-chain", "--prediction", first, "-w", str(ws))
    assert code == 1 and f"prediction prefix '{first}' is ambiguous" in err
    assert sum(i in err for i in ids if i.startswith(first)) == min(count, 10)


def test_top_ranks_by_any_stored_score_and_says_what_it_left_out(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = {r["name"]: r["run_id"] for r in _runs(capsys, ws)}
    demo = runs["demo"]
    code, out, _ = cli(capsys, "top", "--metric", "r2", "--json", "-n", "20", "-w", str(ws))
    data = json.loads(out)
    r2 = [r["scores"]["val"]["r2"] for r in data["rows"]]
    assert code == 0 and len(r2) == 9 and r2 == sorted(r2, reverse=True) and not data["ascending"]
    assert [r["score"] for r in data["rows"]] == r2
    assert {r["run_id"] for r in data["rows"]} == {demo}
    assert data["left_out"] == [
        {"run_id": runs["run"], "metric": "balanced_accuracy", "task_type": "classification",
         "count": 1}
    ]  # fmt: skip
    code, out, _ = cli(capsys, "top", "--run", demo[:8], "--metric", "r2", "-n", "3", "-w", str(ws))
    assert code == 0 and "val r2 (higher is better)" in out and "fold" in out and "run_id" in out
    code, out, _ = cli(capsys, "top", "--metric", "r2", "-w", str(ws))
    assert "left out 1 classification prediction(s)" in out and "--metric balanced_accuracy" in out
    code, out, _ = cli(capsys, "top", "--metric", "accuracy", "--json", "-w", str(ws))
    assert [r["run_id"] for r in json.loads(out)["rows"]] == [runs["run"]]
    code, _, err = cli(capsys, "top", "--metric", "nosuch", "-w", str(ws))
    assert code == 1 and "'nosuch' score" in err and "r2" in err


def test_json_shapes_are_consistent(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _runs(capsys, ws)
    assert all(isinstance(r["config"], dict) and isinstance(r["datasets"], list) for r in runs)
    assert all(isinstance(r["summary"], dict) for r in runs)
    _, out, _ = cli(capsys, "top", "--json", "-w", str(ws))
    assert all(isinstance(r["scores"], dict) for r in json.loads(out)["rows"])
    _, out, _ = cli(capsys, "gc", "--dry-run", "--json", "-w", str(ws))
    gc = json.loads(out)
    assert isinstance(gc["removed"], int) and isinstance(gc["would_remove"], int)
    assert gc["dry_run"] is True and gc["ids"] == []
    _, out, _ = cli(capsys, "show", runs[0]["run_id"][:8], "--json", "-w", str(ws))
    shown = json.loads(out)
    assert isinstance(shown["run"]["config"], dict)
    assert all(isinstance(p["expanded_config"], (dict, list)) for p in shown["pipelines"])


def test_tables_fit_the_width_and_keep_the_differing_part() -> None:
    base = "SNV>SavitzkyGolay(window_length=11)>StandardScaler>PLSRegression(n_components="
    rows = [{"pipeline_id": "ab12cd34", "name": base + n + ")", "best_val": 0.5} for n in "57"]
    text = render(rows, width=60)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert lines[2] != lines[3] and "=5)" in lines[2] and "=7)" in lines[3]
    assert "…" in lines[2]  # it was cut: the common prefix went
    assert render(rows, width=None).count(base) == 2  # a pipe or file is never cut


def test_delete_run_dry_run_and_terminal_confirmation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    argv = ["demo", "--samples", "40", "--wavelengths", "20", "--cv", "2", "-w", str(ws), "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    run_id = _runs(capsys, ws)[0]["run_id"]
    code, out, _ = cli(capsys, "delete-run", run_id[:8], "--dry-run", "-w", str(ws))
    assert code == 0 and "would delete run" in out and "9 pipeline(s)" in out
    assert len(_runs(capsys, ws)) == 1

    # On a terminal it asks; "n" keeps the run (a real process with a pty as its stdin).
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NIRS4ALL_STORE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nirs4all_store", "delete-run", run_id[:8], "-w", str(ws)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    os.close(slave)
    os.write(master, b"n\n")
    out, err = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 1 and "[y/N]" in err and "cancelled: nothing deleted" in err
    assert len(_runs(capsys, ws)) == 1
    code, out, _ = cli(capsys, "delete-run", run_id[:8], "--yes", "-w", str(ws))
    assert code == 0 and f"deleted run {run_id}" in out and _runs(capsys, ws) == []


def test_help_shows_defaults_and_examples_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        if name not in ("db",):
            assert "examples:" in text, name
        for action in sub._actions:
            if name not in ("demo", "run"):  # their options belong to the training CLI
                assert action.help, f"{name} {action.option_strings or action.dest}: no help"
    assert "(default: 10)" in subparsers.choices["top"].format_help()
    assert "--workspace" not in subparsers.choices["predict"].format_help()
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("nirs4all-store ")


def _png_width(png: bytes) -> int:
    return struct.unpack(">I", png[16:20])[0]


def test_report_goes_to_exports_with_an_absolute_path(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    import base64

    monkeypatch.chdir(tmp_path)
    run_id = next(r["run_id"] for r in _runs(capsys, ws) if r["name"] == "demo")
    code, out, err = cli(capsys, "report", run_id[:8], "-w", str(ws))
    target = ws / "exports" / f"report_{run_id[:8]}.html"
    assert code == 0, err
    assert out.strip() == f"wrote {target}" and target.is_file()
    page = target.read_text(encoding="utf-8")
    assert "R² " in page and "R2 " not in page and "<th>test rmse</th>" in page
    assert "<h1>Report: demo</h1>" in page
    png = base64.b64decode(page.split('src="data:image/png;base64,')[1].split('"', 1)[0])
    assert _png_width(png) >= 1000  # 5.2 in at 200 dpi, shown 500 px wide
    code, out, _ = cli(capsys, "report", run_id[:8], "-o", "r.html", "-w", str(ws))
    assert out.strip() == f"wrote {tmp_path / 'r.html'}"


def test_vacuum_rounds_seconds_and_export_of_nothing_is_refused(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "vacuum", "--json", "-w", str(ws))
    assert code == 0 and json.loads(out)["seconds"] == round(json.loads(out)["seconds"], 2)
    code, out, _ = cli(capsys, "vacuum", "-w", str(ws))
    assert out.startswith("vacuumed in ") and " s" in out and "e-" not in out
    target = tmp_path / "none.parquet"
    code, _, err = cli(
        capsys, "export-predictions", "--dataset", "nosuch", "-o", str(target), "-w", str(ws)
    )
    assert code == 1 and "no prediction matches" in err and not target.exists()


def test_one_path_rule_for_export_predict_and_the_cli(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nirs4all_store import predict
    from nirs4all_store.cli.workspace import run_result

    monkeypatch.chdir(tmp_path)
    X = synthetic_nirs(60, 40, seed=0, test_fraction=0.25).X_test
    with WorkspaceStore(ws) as store:
        run_id = next(r["run_id"] for r in store.list_runs().to_pylist() if r["name"] == "demo")
        run = store.get_run(run_id)
        result = run_result(store, run)
        written = result.export("model.n4a")  # a bare name: the current folder
        assert written == tmp_path / "model.n4a" and written.is_absolute()
        y_api = predict("model.n4a", X)
        assert np.allclose(y_api, result.predict(X))
    code, out, _ = cli(capsys, "export-chain", "--run", run["run_id"][:8], "-o", "cli.n4a",
                       "-w", str(ws))  # fmt: skip
    assert code == 0 and out.strip().endswith(f"to {tmp_path / 'cli.n4a'}")
    np.savetxt("x.csv", X, delimiter=";")
    code, out, _ = cli(capsys, "predict", "cli.n4a", "x.csv", "-o", "y.csv")
    assert code == 0 and out.strip() == f"wrote {len(X)} predictions to {tmp_path / 'y.csv'}"
    y_cli = np.loadtxt("y.csv", skiprows=1)
    assert np.allclose(y_cli, y_api)


def test_id_prefixes_resolve_on_every_backend(store: WorkspaceStore) -> None:
    from sklearn.linear_model import Ridge

    from nirs4all_store.cli.errors import CliError
    from nirs4all_store.cli.workspace import find_id
    from nirs4all_store.workbench.training import run

    # 6 pipelines x (2 folds + avg) > 16 predictions: two share a first hex character
    pipelines = [[Ridge(alpha=a)] for a in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)]
    result = run(pipelines, synthetic_nirs(30, 10, seed=4), store, cv=2, verbose=0)
    best = result.best
    for kind in ("run", "pipeline", "chain", "prediction"):
        full = str(best[f"{kind}_id"] if kind != "run" else result.run_id)
        assert find_id(store, kind, full[:8]) == full
        assert find_id(store, kind, full.upper()[:8] if kind == "prediction" else full) == full
    ids = store.query_predictions().column("prediction_id").to_pylist()
    assert len(ids) > 16
    first = Counter(i[0] for i in ids).most_common(1)[0][0]
    with pytest.raises(CliError, match="ambiguous"):
        find_id(store, "prediction", first)
    with pytest.raises(CliError, match="unknown chain 'zz%_': no chain id starts with it"):
        find_id(store, "chain", "zz%_")
