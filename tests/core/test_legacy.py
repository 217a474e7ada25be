"""Adoption of legacy raw-DuckDB nirs4all workspaces (nirs4all_store.legacy).

Every test unpacks the real v4 fixture (DuckDB 1.5.6 file) into tmp_path and compares the
adopted database with the legacy file directly through duckdb.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from nirs4all_store import WorkspaceStore
from nirs4all_store.db.migrate import HEAD_REVISION, VERSION_TABLE
from nirs4all_store.errors import AdoptionError, UnknownSchemaError
from nirs4all_store.legacy import adopt as legacy
from nirs4all_store.legacy.adopt import adopt_legacy_workspace, recover_interrupted_adoption
from nirs4all_store.legacy.header import DuckDBFileVersionError, read_duckdb_header
from nirs4all_store.legacy.schema import CORE_TABLES
from nirs4all_store.repositories.chains import artifact_refs as chain_artifact_ids
from nirs4all_store.validation import stored_prediction_id

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nirs4all_v4_workspace.tar.gz"
REPO_ROOT = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------------


def unpack(dest: Path) -> tuple[Path, dict[str, Any]]:
    with tarfile.open(FIXTURE) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            tar.extractall(dest)
    expected = json.loads((dest / "nirs4all_v4_workspace.expected.json").read_text())
    return dest / "nirs4all_v4_workspace", expected


@pytest.fixture()
def workspace(tmp_path: Path) -> tuple[Path, dict[str, Any], Path]:
    """(workspace, expected.json, pristine copy of the legacy store.duckdb)."""
    ws, expected = unpack(tmp_path)
    pristine = tmp_path / "pristine.duckdb"
    pristine.write_bytes((ws / "store.duckdb").read_bytes())
    return ws, expected, pristine


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def connect_pair(new: Path, old: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
    con.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
    return con


def columns(con: duckdb.DuckDBPyConnection, db: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [db, table],
        ).fetchall()
    ]


def has_version_table(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return bool(
            con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [VERSION_TABLE]
            ).fetchone()[0]
        )
    finally:
        con.close()


def assert_same_data(new: Path, old: Path, *, skip: frozenset[str] = frozenset()) -> None:
    """Every legacy row is in the new database with identical values, and nothing else is.

    Compared in SQL with EXCEPT ALL both ways over every legacy column (arrays and JSON
    included); `ref_count` is recomputed and checked separately; `y_proba` is checked
    separately when a test gives it values (all NULL in the fixture).
    """
    con = connect_pair(new, old)
    try:
        for table in (*CORE_TABLES, "projects"):
            legacy_cols = columns(con, "old", table)
            new_cols = set(columns(con, "new", table))
            assert set(legacy_cols) <= new_cols, f"{table} lost {set(legacy_cols) - new_cols}"
            shared = [c for c in legacy_cols if c not in skip | {"ref_count"}]
            old_exprs = ", ".join(
                "sample_indices::BIGINT[]" if c == "sample_indices" else f'"{c}"' for c in shared
            )
            cols = ", ".join(f'"{c}"' for c in shared)
            old_sql = f"SELECT {old_exprs} FROM old.main.{table}"
            new_sql = f"SELECT {cols} FROM new.main.{table}"
            for a, b in ((old_sql, new_sql), (new_sql, old_sql)):
                diff = con.execute(f"{a} EXCEPT ALL {b}").fetchall()
                assert diff == [], f"{table} differs: {diff[:2]}"
        # arrays element for element through Python as well (exact float64 equality)
        old_rows = dict(
            (r[0], r[1:])
            for r in con.execute(
                "SELECT prediction_id, y_true, y_pred, sample_indices, weights "
                "FROM old.main.prediction_arrays"
            ).fetchall()
        )
        new_rows = dict(
            (r[0], r[1:])
            for r in con.execute(
                "SELECT prediction_id::VARCHAR, y_true, y_pred, sample_indices, weights "
                "FROM new.main.prediction_arrays"
            ).fetchall()
        )
        assert old_rows.keys() == new_rows.keys()
        for pid, values in old_rows.items():
            for a, b in zip(values, new_rows[pid], strict=True):
                assert (a is None) == (b is None)
                if a is not None:
                    assert np.array_equal(np.asarray(a), np.asarray(b)), pid
        # the view reads as it did
        old_view = con.execute("SELECT * FROM old.main.v_chain_summary ORDER BY 1").fetchall()
        new_view = con.execute("SELECT * FROM new.main.v_chain_summary ORDER BY 1").fetchall()
        assert new_view == old_view
    finally:
        con.close()


def table_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CORE_TABLES}
    finally:
        con.close()


def expected_ref_counts(db: Path) -> dict[str, int]:
    """Independent recount: chains per artifact id in fold/shared artifact values."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = {a: 0 for (a,) in con.execute("SELECT artifact_id FROM artifacts").fetchall()}
        for fold, shared in con.execute(
            "SELECT fold_artifacts, shared_artifacts FROM chains"
        ).fetchall():
            ids: set[str] = set()
            for raw in (fold, shared):
                for value in json.loads(raw).values() if raw else ():
                    ids.update([value] if isinstance(value, str) else value)
            for artifact_id in ids:
                counts[artifact_id] += 1
        return counts
    finally:
        con.close()


def ref_counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT artifact_id, ref_count FROM artifacts").fetchall())
    finally:
        con.close()


def edit_legacy(db: Path, *statements: str) -> None:
    con = duckdb.connect(str(db))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


# -- adoption ----------------------------------------------------------------------------------


def test_fixture_header_names_the_writer(workspace: tuple[Path, dict[str, Any], Path]) -> None:
    ws, expected, _ = workspace
    header = read_duckdb_header(ws / "store.duckdb")
    assert header is not None
    assert header.storage_version == 64
    assert header.library_version == f"v{expected['duckdb_version']}"


def test_adoption_carries_every_row_and_value(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, expected, pristine = workspace
    report = adopt_legacy_workspace(ws)

    assert report.status == "adopted"
    db = ws / "store.duckdb"
    assert has_version_table(db)
    assert table_counts(db) == expected["counts"]
    assert {k: v for k, v in report.rows().items() if k in CORE_TABLES} == expected["counts"]
    assert_same_data(db, pristine)
    # the original is kept byte for byte; no temporary file is left
    assert report.backup == ws / "store.duckdb.legacy-bak"
    assert sha256(ws / "store.duckdb.legacy-bak") == sha256(pristine)
    assert sorted(p.name for p in ws.iterdir()) == [
        "artifacts",
        "store.duckdb",
        "store.duckdb.legacy-bak",
    ]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [
            (HEAD_REVISION,)
        ]
        # data types of ours: 2-D y_proba, BIGINT indices
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = 'prediction_arrays'"
            ).fetchall()
        )
        assert types["y_proba"] == "DOUBLE[][]"
        assert types["sample_indices"] == "BIGINT[]"
    finally:
        con.close()


def test_ref_counts_are_recomputed_from_chains(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    # the legacy store counted save calls: make them wrong, and add an unreferenced artifact
    edit_legacy(
        db,
        "UPDATE artifacts SET ref_count = ref_count + 5",
        "INSERT INTO artifacts (artifact_id, artifact_path, content_hash, ref_count, created_at)"
        " VALUES ('orphan', 'ab/abc.joblib', 'abc', 4, TIMESTAMP '2026-01-01 00:00:00')",
    )
    expected = expected_ref_counts(db)
    assert expected["orphan"] == 0
    assert expected["bf5d65fc-5d20-4a98-8d49-0f43fb9237d5"] == 3  # shared by three chains

    report = adopt_legacy_workspace(ws)

    assert ref_counts(db) == expected
    assert report.ref_counts_changed == len(expected)
    con = duckdb.connect(str(db), read_only=True)
    try:
        referenced = dict(
            con.execute("SELECT artifact_id, referenced_at FROM artifacts").fetchall()
        )
        first_chain = dict(
            con.execute(
                "SELECT a.artifact_id, min(c.created_at) FROM artifacts a, chains c "
                "WHERE c.fold_artifacts::VARCHAR LIKE '%' || a.artifact_id || '%' "
                "OR c.shared_artifacts::VARCHAR LIKE '%' || a.artifact_id || '%' GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    assert referenced["orphan"] is None
    assert {a: t for a, t in referenced.items() if a != "orphan"} == first_chain


@pytest.mark.parametrize(
    ("fold", "shared", "ids"),
    [
        ('{"fold_0": "a", "fold_1": "b"}', '{"0": ["c", "a"]}', {"a", "b", "c"}),
        (None, '{"0": "c", "1": ["d", ["e"]]}', {"c", "d", "e"}),
        ('["a", "b"]', None, {"a", "b"}),
        (None, None, set()),
    ],
)
def test_chain_artifact_ids(fold: str | None, shared: str | None, ids: set[str]) -> None:
    assert chain_artifact_ids(fold, shared) == ids


def test_projects_and_null_fills_are_carried(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    edit_legacy(
        db,
        "INSERT INTO projects VALUES ('p1', 'Wheat', 'protein work', '#ff0000', "
        "TIMESTAMP '2026-01-02 03:04:05.123456', TIMESTAMP '2026-01-03 00:00:00')",
        "INSERT INTO projects (project_id, name, created_at, updated_at) "
        "VALUES ('p2', 'Barley', NULL, NULL)",
        "INSERT INTO logs (log_id, pipeline_id, step_idx, event, level, created_at) "
        "SELECT 'nulls', pipeline_id, 0, 'start', NULL, NULL FROM pipelines LIMIT 1",
    )
    report = adopt_legacy_workspace(ws)

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT * FROM projects ORDER BY project_id").fetchall()
        log = con.execute("SELECT level, created_at FROM logs WHERE log_id = 'nulls'").fetchone()
    finally:
        con.close()
    assert rows[0][:4] == ("p1", "Wheat", "protein work", "#ff0000")
    assert str(rows[0][4]) == "2026-01-02 03:04:05.123456"
    # NULLs in columns we require: legacy DDL defaults, timestamps the adoption time
    assert rows[1][:4] == ("p2", "Barley", "", "#14b8a6")
    assert rows[1][4] is not None and rows[1][4] == rows[1][5]
    assert log[0] == "info" and log[1] == rows[1][4]
    tables = {t.name: t for t in report.tables}
    assert tables["projects"].filled == {"created_at": 1, "updated_at": 1}
    assert tables["logs"].filled == {"level": 1, "created_at": 1}
    assert "project_id" in tables["runs"].extra_columns


def test_flat_y_proba_becomes_samples_by_classes(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    con = duckdb.connect(str(db))
    try:
        pid, n = con.execute(
            "SELECT prediction_id, len(y_pred) FROM prediction_arrays ORDER BY 1 LIMIT 1"
        ).fetchone()
        proba = np.arange(n * 3, dtype=float) / 7.0
        con.execute(
            "UPDATE prediction_arrays SET y_proba = ? WHERE prediction_id = ?",
            [proba.tolist(), pid],
        )
    finally:
        con.close()
    adopt_legacy_workspace(ws)
    con = duckdb.connect(str(db), read_only=True)
    try:
        (got,) = con.execute(
            "SELECT y_proba FROM prediction_arrays WHERE prediction_id = ?", [pid]
        ).fetchone()
        others = con.execute(
            "SELECT count(*) FROM prediction_arrays WHERE y_proba IS NOT NULL"
        ).fetchone()[0]
    finally:
        con.close()
    assert np.array_equal(np.asarray(got), proba.reshape(n, 3))
    assert others == 1
    assert_same_data(db, ws / "store.duckdb.legacy-bak", skip=frozenset({"y_proba"}))


def test_y_proba_of_impossible_length_refuses_and_writes_nothing(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    con = duckdb.connect(str(db))
    try:
        pid, n = con.execute(
            "SELECT prediction_id, len(y_pred) FROM prediction_arrays ORDER BY 1 LIMIT 1"
        ).fetchone()
        con.execute(
            "UPDATE prediction_arrays SET y_proba = ? WHERE prediction_id = ?",
            [[0.5] * (2 * n + 1), pid],
        )
    finally:
        con.close()
    before = listing(ws)
    with pytest.raises(AdoptionError, match=pid) as err:
        adopt_legacy_workspace(ws)
    assert "untouched" in str(err.value)
    assert listing(ws) == before


def test_nirs4all_prediction_ids_are_adopted_as_the_adapter_stores_them(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    """A DuckDB workspace with a prediction_arrays table and nirs4all 0.8's 16-character ids
    (issue 13): each such id is stored as its uuid5 (`stored_prediction_id`, the adapter's
    mapping), its arrays with it; UUID ids are kept as they are."""
    ws, expected, _ = workspace
    nirs_id = "63c51ec4-afac-4e"
    con = duckdb.connect(str(ws / "store.duckdb"))
    try:
        (source,) = con.execute(
            "SELECT prediction_id FROM prediction_arrays ORDER BY prediction_id LIMIT 1"
        ).fetchone()
        con.execute(
            "INSERT INTO predictions SELECT * REPLACE (? AS prediction_id, 'fold_x' AS fold_id) "
            "FROM predictions WHERE prediction_id = ?",
            [nirs_id, source],
        )
        con.execute(
            "INSERT INTO prediction_arrays SELECT * REPLACE (? AS prediction_id) "
            "FROM prediction_arrays WHERE prediction_id = ?",
            [nirs_id, source],
        )
    finally:
        con.close()
    report = adopt_legacy_workspace(ws)
    assert report.rows()["predictions"] == expected["counts"]["predictions"] + 1
    with WorkspaceStore(ws) as store:
        got = store.get_prediction(stored_prediction_id(nirs_id), load_arrays=True)
        original = store.get_prediction(source, load_arrays=True)
        assert got is not None and original is not None and got["fold_id"] == "fold_x"
        np.testing.assert_array_equal(got["y_pred"], original["y_pred"])
        assert store.verify().ok


def test_two_spellings_of_one_prediction_id_refuse_naming_them(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    con = duckdb.connect(str(ws / "store.duckdb"))
    try:
        (pid,) = con.execute("SELECT prediction_id FROM predictions LIMIT 1").fetchone()
        con.execute(
            "INSERT INTO predictions SELECT * REPLACE (upper(prediction_id) AS prediction_id, "
            "'fold_x' AS fold_id) FROM predictions WHERE prediction_id = ?",
            [pid],
        )
    finally:
        con.close()
    before = listing(ws)
    for dry_run in (True, False):
        with pytest.raises(AdoptionError, match=rf"spellings of one id \('{pid.upper()}'") as err:
            adopt_legacy_workspace(ws, dry_run=dry_run)
        assert "untouched" in str(err.value)
    assert listing(ws) == before


def test_adopting_twice_is_a_no_op(workspace: tuple[Path, dict[str, Any], Path]) -> None:
    ws, _, _ = workspace
    adopt_legacy_workspace(ws)
    before = listing(ws)
    report = adopt_legacy_workspace(ws)
    assert report.status == "already_current"
    assert report.tables == []
    assert listing(ws) == before


def test_dry_run_writes_nothing(workspace: tuple[Path, dict[str, Any], Path]) -> None:
    ws, expected, _ = workspace
    before = listing(ws)
    report = adopt_legacy_workspace(ws, dry_run=True)
    assert report.status == "would_adopt"
    assert {k: v for k, v in report.rows().items() if k in CORE_TABLES} == expected["counts"]
    text = report.describe()
    assert "dry run" in text and "chain_path_hash" in text and "v1.5.6" in text
    assert "v_chain_summary" in text
    assert listing(ws) == before


def test_unknown_table_and_column_are_refused_listing_them(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    edit_legacy(
        db,
        "CREATE TABLE spectra_cache (k VARCHAR, v DOUBLE[])",
        "CREATE VIEW my_view AS SELECT 1 AS one",
        "ALTER TABLE projects ADD COLUMN owner VARCHAR",
    )
    before = listing(ws)
    with pytest.raises(UnknownSchemaError) as err:
        adopt_legacy_workspace(ws)
    message = str(err.value)
    assert "table spectra_cache" in message
    assert "view my_view" in message
    assert "column projects.owner" in message
    assert "Nothing was written" in message
    assert listing(ws) == before


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    edit_legacy(db, "CREATE TABLE measurements (id INTEGER, value DOUBLE)")
    before = listing(tmp_path)
    with pytest.raises(UnknownSchemaError, match=r"table measurements.*missing table runs"):
        adopt_legacy_workspace(tmp_path)
    assert listing(tmp_path) == before


def test_unreadable_file_names_its_duckdb_and_how_to_convert(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    db = ws / "store.duckdb"
    data = bytearray(db.read_bytes())
    data[12:20] = (999).to_bytes(8, "little")  # a storage version no DuckDB can read
    db.write_bytes(bytes(data))
    before = listing(ws)
    with pytest.raises(DuckDBFileVersionError) as err:
        adopt_legacy_workspace(ws)
    message = str(err.value)
    assert "written by DuckDB v1.5.6" in message
    assert "duckdb==1.5.6" in message
    assert "EXPORT DATABASE" in message and "IMPORT DATABASE" in message
    assert duckdb.__version__ in message
    assert listing(ws) == before


def test_header_of_a_pre_0_10_file(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    path.write_bytes(b"\0" * 8 + b"DUCK" + (51).to_bytes(8, "little") + b"\0" * 200)
    header = read_duckdb_header(path)
    assert header is not None
    assert header.writer == "v0.8.0 or v0.8.1"
    (tmp_path / "not.duckdb").write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    assert read_duckdb_header(tmp_path / "not.duckdb") is None


def test_existing_backup_refuses_before_writing(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    (ws / "store.duckdb.legacy-bak").write_bytes(b"someone's file")
    before = listing(ws)
    with pytest.raises(AdoptionError, match="already exists"):
        adopt_legacy_workspace(ws)
    assert listing(ws) == before


# -- crashes -----------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
from nirs4all_store.legacy import adopt as legacy
target = sys.argv[2]
if target != "-":
    def on_step(name):
        if name == target:
            os.kill(os.getpid(), signal.SIGKILL)
    legacy._on_step = on_step
import alembic.command, alembic.runtime.migration, alembic.script  # warm: kills land in work
print("ready", flush=True)
legacy.adopt_legacy_workspace(sys.argv[1])
print("done", flush=True)
"""

STEPS = [
    "start",
    "built",
    *(f"copied:{t}" for t in ("projects", *CORE_TABLES)),
    "copied",
    "adopted",
    "backed_up",
    "switched",
]


def child(ws: Path, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws), target],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


def check_after_crash(ws: Path, expected: dict[str, Any], pristine: Path) -> str:
    """The DB is the untouched legacy file or the complete adopted one; then recovery and
    re-adoption give full data. Returns which state the crash left."""
    db = ws / "store.duckdb"
    if sha256(db) == sha256(pristine):
        state = "legacy"
    else:
        assert has_version_table(db), "store.duckdb is neither the legacy file nor adopted"
        assert table_counts(db) == expected["counts"]
        assert_same_data(db, pristine)
        state = "adopted"
    recover_interrupted_adoption(ws)
    leftovers = [p.name for p in ws.iterdir() if p.name.endswith((".adopting", ".adopted", ".tmp"))]
    assert leftovers == []
    adopt_legacy_workspace(ws)
    assert has_version_table(db)
    assert table_counts(db) == expected["counts"]
    assert_same_data(db, pristine)
    assert sha256(ws / "store.duckdb.legacy-bak") == sha256(pristine)
    assert ref_counts(db) == expected_ref_counts(pristine)
    return state


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_step_is_recoverable(tmp_path: Path, step: str) -> None:
    ws, expected = unpack(tmp_path)
    pristine = tmp_path / "pristine.duckdb"
    pristine.write_bytes((ws / "store.duckdb").read_bytes())
    proc = child(ws, step)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, out
    state = check_after_crash(ws, expected, pristine)
    # before the switch the original file is in place, from the switch on the new one
    assert state == ("adopted" if step == "switched" else "legacy")


@pytest.mark.slow
def test_sigkill_at_random_moments_is_recoverable(tmp_path: Path) -> None:
    rng = random.Random(7)
    states: list[str] = []
    for attempt in range(12):
        root = tmp_path / f"attempt{attempt}"
        ws, expected = unpack(root)
        pristine = root / "pristine.duckdb"
        pristine.write_bytes((ws / "store.duckdb").read_bytes())
        proc = child(ws, "-")
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # the adoption itself takes well under a second here; kill somewhere inside it
        # (or, now and then, after it finished: that must be fine too)
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.8))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
        states.append(check_after_crash(ws, expected, pristine))
    assert set(states) <= {"legacy", "adopted"}


def test_recover_is_a_no_op_without_leftovers(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, _ = workspace
    before = listing(ws)
    recover_interrupted_adoption(ws)
    assert listing(ws) == before


def test_recover_drops_an_adopted_copy_when_the_legacy_file_has_a_wal(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, _, pristine = workspace
    (ws / "store.duckdb.adopted").write_bytes(b"complete copy")
    (ws / "store.duckdb.wal").write_bytes(b"legacy wal")
    recover_interrupted_adoption(ws)
    assert not (ws / "store.duckdb.adopted").exists()
    assert sha256(ws / "store.duckdb") == sha256(pristine)
    assert legacy.ADOPTED_SUFFIX == ".adopted"


# -- through WorkspaceStore ----------------------------------------------------------------


def legacy_rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_workspace_store_adopts_on_open_and_reads_legacy_data(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    from nirs4all_store.store import WorkspaceStore

    ws, expected, pristine = workspace
    with WorkspaceStore(ws) as store:
        assert sha256(ws / "store.duckdb.legacy-bak") == sha256(pristine)
        assert {r["run_id"] for r in expected["runs"]} == {
            store.get_run(r["run_id"])["run_id"] for r in expected["runs"]
        }
        arrays = legacy_rows(
            pristine,
            "SELECT prediction_id, y_true, y_pred, y_proba, sample_indices, weights "
            "FROM prediction_arrays",
        )
        assert len(arrays) == expected["counts"]["prediction_arrays"]
        for pid, *values in arrays:
            got = store.get_prediction(pid, load_arrays=True)
            assert got is not None
            for name, value in zip(
                ("y_true", "y_pred", "y_proba", "sample_indices", "weights"), values, strict=True
            ):
                if value is None:
                    assert got[name] is None, (pid, name)
                else:
                    assert np.array_equal(got[name], np.asarray(value)), (pid, name)
            assert got["sample_indices"].dtype == np.int64

        top = store.top_predictions(n=3)
        assert [(r["prediction_id"], r["val_score"]) for r in top.to_pylist()] == legacy_rows(
            pristine,
            "SELECT prediction_id, val_score FROM predictions WHERE partition = 'val' "
            "AND val_score IS NOT NULL ORDER BY val_score, prediction_id LIMIT 3",
        )

        for run in expected["runs"]:
            summary = {
                r["pipeline_id"]: (r["log_count"], r["total_duration_ms"])
                for r in store.get_run_log_summary(run["run_id"]).to_pylist()
            }
            want = legacy_rows(
                pristine,
                "SELECT p.pipeline_id, count(l.log_id), coalesce(sum(l.duration_ms), 0) "
                "FROM pipelines p "
                "JOIN logs l ON l.pipeline_id = p.pipeline_id WHERE p.run_id = ? GROUP BY 1",
                [run["run_id"]],
            )
            assert want and all(summary[pid] == (n, float(ms)) for pid, n, ms in want)
        assert store.verify().ok
    # reopening does not adopt again
    before = listing(ws)
    WorkspaceStore(ws).close()
    assert sha256(ws / "store.duckdb.legacy-bak") == before["store.duckdb.legacy-bak"]


def test_delete_run_then_gc_keeps_what_the_other_run_needs(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    from nirs4all_store.store import WorkspaceStore

    ws, expected, pristine = workspace
    chains = legacy_rows(
        pristine,
        "SELECT p.run_id, c.fold_artifacts, c.shared_artifacts FROM chains c "
        "JOIN pipelines p ON p.pipeline_id = c.pipeline_id",
    )
    doomed, kept = (r["run_id"] for r in expected["runs"])
    needed = set().union(*(chain_artifact_ids(f, s) for run, f, s in chains if run == kept))
    only_doomed = (
        set().union(*(chain_artifact_ids(f, s) for run, f, s in chains if run == doomed)) - needed
    )
    assert needed and only_doomed  # the fixture shares some artifacts, not all

    with WorkspaceStore(ws) as store:
        store.delete_run(doomed)
        store.gc_artifacts(grace_seconds=0)
        for artifact_id in needed:
            assert store.load_artifact(artifact_id) is not None
        remaining = {r["artifact_id"] for r in store.list_artifacts().to_pylist()}
        assert remaining == needed
        assert store.verify().ok


def test_legacy_wal_is_folded_in_before_adoption(
    workspace: tuple[Path, dict[str, Any], Path],
) -> None:
    ws, expected, _ = workspace
    db = ws / "store.duckdb"
    # the legacy store crashed after a commit: the row lives only in store.duckdb.wal
    script = (
        "import duckdb, os, signal, sys\n"
        "c = duckdb.connect(sys.argv[1])\n"
        "c.execute(\"INSERT INTO projects (project_id, name) VALUES ('walp', 'in the wal')\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert (ws / "store.duckdb.wal").exists()

    assert adopt_legacy_workspace(ws, dry_run=True).rows()["projects"] == 1
    assert (ws / "store.duckdb.wal").exists()  # the dry run wrote nothing

    report = adopt_legacy_workspace(ws)
    assert report.rows()["projects"] == 1
    assert not (ws / "store.duckdb.wal").exists()
    assert legacy_rows(db, "SELECT project_id, name FROM projects") == [("walp", "in the wal")]
    assert table_counts(db) == expected["counts"]
    # the backup holds the row in its own file, no WAL needed
    assert legacy_rows(ws / "store.duckdb.legacy-bak", "SELECT count(*) FROM projects") == [(1,)]


# -- revision 0002 -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["duckdb", "sqlite"])
def test_revision_0002_upgrades_a_0001_database_with_data(tmp_path: Path, backend: str) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from nirs4all_store.db.engine import create_store_engine
    from nirs4all_store.db.migrate import current_revision, downgrade, upgrade

    url = f"{backend}:///{tmp_path / ('store.' + backend)}"
    engine = create_store_engine(url)
    try:
        upgrade(engine, "0001")
        t = dt.datetime(2026, 1, 1)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO runs (run_id, name, status, created_at) "
                    "VALUES ('r', 'run', 'completed', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO pipelines (pipeline_id, run_id, name, dataset_name, status, "
                    "created_at) VALUES ('p', 'r', 'pipe', 'wheat', 'completed', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO chains (chain_id, pipeline_id, steps, model_step_idx, "
                    "model_class, fold_strategy, created_at) "
                    "VALUES ('c', 'p', '[]', 0, 'PLS', 'per_fold', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (prediction_id, pipeline_id, chain_id, "
                    "dataset_name, model_name, model_class, fold_id, partition, metric, "
                    "task_type, created_at) VALUES "
                    "('x', 'p', 'c', 'wheat', 'PLS', 'PLS', 'f0', 'val', 'rmse', 'regression', :t)"
                ),
                {"t": t},
            )
        upgrade(engine, "0002")
        with engine.connect() as conn:
            assert current_revision(conn) == "0002"
            assert conn.execute(
                sa.text("SELECT chain_id, run_id, cv_fold_count FROM v_chain_summary")
            ).all() == [("c", "r", None)]
            assert conn.execute(sa.text("SELECT refit_context FROM predictions")).all() == [(None,)]
            assert conn.execute(sa.text("SELECT count(*) FROM projects")).scalar() == 0
        downgrade(engine, "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == 1
            assert "project_id" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        downgrade(engine, "base")
        upgrade(engine)
        with engine.connect() as conn:
            assert current_revision(conn) == HEAD_REVISION
    finally:
        engine.dispose()
