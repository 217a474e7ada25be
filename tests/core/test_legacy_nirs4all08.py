"""Adoption of workspaces in nirs4all 0.8.x's own layout, without nirs4all installed.

The workspaces are written here the way nirs4all 0.8 writes them (its DDL types, read from
0.8.11's `store_schema.py`): ``store.sqlite`` (0.8.11) or ``store.duckdb`` without a
`prediction_arrays` table (the 0.8 releases on DuckDB), arrays in ``arrays/<dataset>.parquet``,
16-character prediction ids, ``name$hash:fold`` artifact ids, ``sha256:`` hashes, artifact
files written under ``artifacts/<2 hex>/``. tests/integrations/test_nirs4all_native.py does
the same with a workspace nirs4all itself wrote.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from nirs4all_store import WorkspaceStore
from nirs4all_store.errors import AdoptionError
from nirs4all_store.legacy import adopt as legacy
from nirs4all_store.legacy.adopt import adopt_legacy_workspace
from nirs4all_store.validation import NIRS4ALL_ID_NAMESPACE, stored_prediction_id

PIPELINE, CHAIN, RUN = "pipe-1", "chain-1", "run-1"
SCALER, MODEL = "p$7c1fa10edc2c:all", "p$2d4cd0b32aa0:0"
SQL_TYPES = {"TEXT": "VARCHAR", "REAL": "DOUBLE", "INTEGER": "INTEGER", "TIMESTAMP": "TIMESTAMP"}
#: nirs4all 0.8.11's tables (store_schema.SCHEMA_DDL), as (column, SQLite type).
DDL: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "TEXT"),
        ("name", "TEXT"),
        ("status", "TEXT"),
        ("created_at", "TIMESTAMP"),
        ("project_id", "TEXT"),
    ],
    "pipelines": [
        ("pipeline_id", "TEXT"),
        ("run_id", "TEXT"),
        ("name", "TEXT"),
        ("dataset_name", "TEXT"),
        ("status", "TEXT"),
        ("duration_ms", "INTEGER"),
        ("created_at", "TIMESTAMP"),
    ],
    "chains": [
        ("chain_id", "TEXT"),
        ("pipeline_id", "TEXT"),
        ("steps", "TEXT"),
        ("model_step_idx", "INTEGER"),
        ("model_class", "TEXT"),
        ("fold_strategy", "TEXT"),
        ("fold_artifacts", "TEXT"),
        ("shared_artifacts", "TEXT"),
        ("task_type", "TEXT"),
        ("final_agg_test_score", "REAL"),
        ("final_agg_scores", "TEXT"),
        ("created_at", "TIMESTAMP"),
    ],
    "predictions": [
        ("prediction_id", "TEXT"),
        ("pipeline_id", "TEXT"),
        ("chain_id", "TEXT"),
        ("dataset_name", "TEXT"),
        ("model_name", "TEXT"),
        ("model_class", "TEXT"),
        ("fold_id", "TEXT"),
        ("partition", "TEXT"),
        ("val_score", "REAL"),
        ("metric", "TEXT"),
        ("task_type", "TEXT"),
        ("scores", "TEXT"),
        ("branch_id", "INTEGER"),
        ("refit_context", "TEXT"),
        ("created_at", "TIMESTAMP"),
    ],
    "artifacts": [
        ("artifact_id", "TEXT"),
        ("artifact_path", "TEXT"),
        ("content_hash", "TEXT"),
        ("operator_class", "TEXT"),
        ("artifact_type", "TEXT"),
        ("format", "TEXT"),
        ("size_bytes", "INTEGER"),
        ("ref_count", "INTEGER"),
        ("created_at", "TIMESTAMP"),
    ],
    "logs": [
        ("log_id", "TEXT"),
        ("pipeline_id", "TEXT"),
        ("step_idx", "INTEGER"),
        ("event", "TEXT"),
        ("created_at", "TIMESTAMP"),
    ],
}


def nirs_id() -> str:
    return str(uuid.uuid4())[:16]  # nirs4all 0.8's prediction ids


def _write_artifact(ws: Path, obj: Any, name: str) -> tuple[str, str, int]:
    import io

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{digest[:2]}/{name}_{digest[:12]}.joblib"
    (ws / "artifacts" / rel).parent.mkdir(parents=True, exist_ok=True)
    (ws / "artifacts" / rel).write_bytes(data)
    return rel, f"sha256:{digest}", len(data)


def build_rows(ws: Path, n_predictions: int = 4) -> tuple[dict[str, list[tuple]], dict[str, Any]]:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 8)), rng.normal(size=30)
    scaler = StandardScaler().fit(X)
    model = Ridge().fit(scaler.transform(X), y)
    s_path, s_hash, s_size = _write_artifact(ws, scaler, "transformer_StandardScaler")
    m_path, m_hash, m_size = _write_artifact(ws, model, "model_Ridge")
    when = "2026-01-02 03:04:05"
    steps = [
        {
            "step_idx": 1,
            "operator_class": "StandardScaler",
            "artifact_ids": [SCALER],
            "stateless": False,
        },
        {"step_idx": 2, "operator_class": "Ridge", "artifact_ids": [MODEL], "stateless": False},
    ]
    ids = [nirs_id() for _ in range(n_predictions)]
    rows: dict[str, list[tuple]] = {
        "runs": [(RUN, "r", "completed", when, None)],
        "pipelines": [(PIPELINE, RUN, "p", "ds", "completed", 447, when)],
        "chains": [
            (
                CHAIN,
                PIPELINE,
                json.dumps(steps),
                2,
                "Ridge",
                "per_fold",
                json.dumps({"fold_0": MODEL}),
                json.dumps({"1": [SCALER]}),
                "regression",
                None,
                None,
                when,
            )
        ],
        "predictions": [
            (
                pid,
                PIPELINE,
                CHAIN if i else "",
                "ds",
                "Ridge",
                "Ridge",
                str(i),
                "val",
                0.1 + i,
                "rmse",
                "regression",
                json.dumps({"val": {"rmse": 0.1 + i}}),
                None,
                None,
                when,
            )
            for i, pid in enumerate(ids)
        ],
        "artifacts": [
            (SCALER, s_path, s_hash, "StandardScaler", "transformer", "joblib", s_size, 1, when),
            (MODEL, m_path, m_hash, "Ridge", "model", "joblib", m_size, 1, when),
        ],
        "logs": [],
    }
    return rows, {"ids": ids, "X": X, "expected": model.predict(scaler.transform(X[:3]))}


def write_arrays(ws: Path, ids: list[str], extra: list[dict[str, Any]] | None = None) -> None:
    records = [
        {
            "prediction_id": pid,
            "dataset_name": "ds",
            "y_true": [1.0, 2.0, float(i)],
            "y_pred": [1.5, 2.5, float(i)],
            "y_proba": None,
            "y_proba_shape": None,
            "sample_indices": [0, 1, 2],
            "weights": None,
            "sample_metadata": None,
        }
        for i, pid in enumerate(ids)
    ] + (extra or [])
    schema = pa.schema(
        [
            ("prediction_id", pa.string()),
            ("dataset_name", pa.string()),
            ("y_true", pa.list_(pa.float64())),
            ("y_pred", pa.list_(pa.float64())),
            ("y_proba", pa.list_(pa.float64())),
            ("y_proba_shape", pa.list_(pa.int32())),
            ("sample_indices", pa.list_(pa.int32())),
            ("weights", pa.list_(pa.float64())),
            ("sample_metadata", pa.string()),
        ]
    )
    (ws / "arrays").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records, schema=schema), ws / "arrays" / "ds.parquet")


def sqlite_workspace(ws: Path, **kwargs: Any) -> dict[str, Any]:
    (ws / "artifacts").mkdir(parents=True)
    rows, info = build_rows(ws, **kwargs)
    con = sqlite3.connect(ws / "store.sqlite")
    con.execute("PRAGMA journal_mode=WAL")  # as nirs4all's create_schema
    for table, columns in DDL.items():
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
        marks = ", ".join("?" * len(columns))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
    con.commit()
    con.close()
    write_arrays(ws, info["ids"])
    return info


def duckdb_workspace(ws: Path) -> dict[str, Any]:
    (ws / "artifacts").mkdir(parents=True)
    rows, info = build_rows(ws)
    con = duckdb.connect(str(ws / "store.duckdb"))
    for table, columns in DDL.items():
        kept = [(c, t) for c, t in columns if not c.startswith("final_agg")]
        cols = ", ".join(f"{c} {SQL_TYPES[t]}" for c, t in kept)
        con.execute(f"CREATE TABLE {table} ({cols})")
        index = [i for i, (c, _) in enumerate(columns) if not c.startswith("final_agg")]
        for row in rows[table]:
            con.execute(
                f"INSERT INTO {table} VALUES ({', '.join('?' * len(kept))})",
                [row[i] for i in index],
            )
    con.close()
    write_arrays(ws, info["ids"])
    return info


def digests(ws: Path) -> dict[str, str]:
    return {
        str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ws.rglob("*"))
        if p.is_file()
    }


def assert_adopted(ws: Path, info: dict[str, Any]) -> None:
    with WorkspaceStore(ws) as store:
        assert store.query_predictions().num_rows == len(info["ids"])
        for i, pid in enumerate(info["ids"]):
            got = store.get_prediction(stored_prediction_id(pid), load_arrays=True)
            assert got is not None and got["fold_id"] == str(i)
            assert got["chain_id"] == (CHAIN if i else None)  # "" is nirs4all's "no chain"
            np.testing.assert_array_equal(got["y_true"], [1.0, 2.0, float(i)])
            np.testing.assert_array_equal(got["sample_indices"], [0, 1, 2])
        artifact = store.get_artifact(MODEL)
        assert artifact is not None and len(artifact["content_hash"]) == 64
        assert artifact["ref_count"] == 1
        report = store.verify()
        assert not (report.missing_files or report.orphan_files or report.corrupted_files)
        assert not report.ref_count_mismatches
        got = store.replay_chain(CHAIN, info["X"][:3])
    np.testing.assert_allclose(got, info["expected"], rtol=0, atol=1e-12)


# -- tests ------------------------------------------------------------------------------------


def test_ids_map_like_the_adapter() -> None:
    pid = "63c51ec4-afac-4e"
    assert stored_prediction_id(pid) == str(uuid.uuid5(NIRS4ALL_ID_NAMESPACE, pid))
    full = str(uuid.uuid4())
    assert stored_prediction_id(full.upper()) == full
    with pytest.raises(ValueError, match="non-empty"):
        stored_prediction_id("")


def test_sqlite_workspace_is_adopted_on_open_leaving_the_original(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    info = sqlite_workspace(ws)
    before = digests(ws)
    assert_adopted(ws, info)
    after = digests(ws)
    assert {k: after.get(k) for k in before} == before
    assert not (ws / "store.sqlite-shm").exists() and not (ws / "store.sqlite-wal").exists()


def test_duckdb_0_8_workspace_with_parquet_arrays_is_adopted(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    info = duckdb_workspace(ws)
    original = hashlib.sha256((ws / "store.duckdb").read_bytes()).hexdigest()
    report = adopt_legacy_workspace(ws)
    assert report.status == "adopted" and report.rows()["prediction_arrays"] == len(info["ids"])
    backup = ws / "store.duckdb.legacy-bak"
    assert report.backup == backup
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == original
    assert_adopted(ws, info)


def test_dead_and_repeated_array_rows(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    info = sqlite_workspace(ws)
    gone, first = nirs_id(), info["ids"][0]
    row = {
        "dataset_name": "ds",
        "y_proba": None,
        "y_proba_shape": None,
        "weights": None,
        "sample_metadata": None,
        "sample_indices": [0, 1, 2],
    }
    write_arrays(
        ws,
        info["ids"],
        [
            {**row, "prediction_id": gone, "y_true": [9.0], "y_pred": [9.0]},  # no prediction
            {**row, "prediction_id": first, "y_true": [7.0, 7.0, 7.0], "y_pred": [7.0, 7.0, 7.0]},
        ],
    )
    (ws / "arrays" / "_tombstones.json").write_text(json.dumps({info["ids"][1]: "ds"}))
    report = adopt_legacy_workspace(ws)
    assert report.rows()["prediction_arrays"] == len(info["ids"]) - 1
    with WorkspaceStore(ws) as store:
        got = store.get_prediction(stored_prediction_id(first), load_arrays=True)
        np.testing.assert_array_equal(got["y_true"], [7.0, 7.0, 7.0])  # the last row wins
        tomb = store.get_prediction(stored_prediction_id(info["ids"][1]), load_arrays=True)
        assert tomb is not None and tomb.get("y_true") is None


def test_values_this_schema_cannot_keep_refuse_and_write_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sqlite_workspace(ws)
    con = sqlite3.connect(ws / "store.sqlite")
    con.execute("UPDATE chains SET final_agg_test_score = 1.5")
    con.commit()
    con.close()
    before = digests(ws)
    with pytest.raises(AdoptionError, match=r"chains\.final_agg_test_score has 1 value"):
        WorkspaceStore(ws)
    assert digests(ws) == before and not (ws / "store.duckdb").exists()


def test_unknown_sqlite_table_refuses(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sqlite_workspace(ws)
    con = sqlite3.connect(ws / "store.sqlite")
    con.execute("CREATE TABLE surprise (x TEXT)")
    con.commit()
    con.close()
    with pytest.raises(AdoptionError, match=r"unknown table\(s\) \['surprise'\]"):
        adopt_legacy_workspace(ws)
    assert not (ws / "store.duckdb").exists()


def test_interrupted_switch_rolls_forward_on_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    info = sqlite_workspace(ws)

    def crash(step: str) -> None:
        if step == "adopted":
            raise OSError("simulated crash after .adopted was complete")

    monkeypatch.setattr(legacy, "_on_step", crash)
    with pytest.raises(AdoptionError, match="recover_interrupted_adoption"):
        adopt_legacy_workspace(ws)
    assert (ws / "store.duckdb.adopted").exists() and not (ws / "store.duckdb").exists()
    monkeypatch.setattr(legacy, "_on_step", None)
    assert_adopted(ws, info)
    assert not (ws / "store.duckdb.adopted").exists()


def test_read_only_open_of_a_nirs4all_sqlite_folder_says_how_to_adopt(tmp_path: Path) -> None:
    from nirs4all_store.errors import WorkspaceNotFoundError

    ws = tmp_path / "ws"
    sqlite_workspace(ws)
    before = digests(ws)
    with pytest.raises(WorkspaceNotFoundError, match=r"store\.sqlite: open it once read-write"):
        WorkspaceStore(ws, read_only=True)
    assert digests(ws) == before and not (ws / "store.duckdb").exists()  # nothing written
    with pytest.raises(WorkspaceNotFoundError, match="open it read-write once, or check"):
        WorkspaceStore(tmp_path / "empty", read_only=True)  # no nirs4all file: no such hint


# -- a workspace nirs4all 0.8.3 itself wrote on its own DuckDB store --------------------------
#: Made with nirs4all 0.8.3 on duckdb 1.4.4 (the last 0.8 release on DuckDB; its store needs
#: duckdb 1.x): the scenario of tests/integrations/test_nirs4all_run.py (MinMaxScaler,
#: ShuffleSplit(3, random_state=42), PLSRegression(3 | 6), refit, random_state=42) on
#: tests/fixtures/nirs4all_regression_small; store.duckdb, arrays/ and artifacts/ kept.
NIRS4ALL_083 = Path(__file__).parents[1] / "fixtures" / "nirs4all_083_duckdb_workspace.tar.gz"
#: nirs4all 0.8.3's `predict(chain_id=refit chain)` of the first 5 Xval spectra there.
PREDICT_CHAIN_083 = [
    21.35426544012322,
    42.88108202265361,
    20.111574662663386,
    34.14115543410456,
    20.49682621429079,
]


def test_a_workspace_nirs4all_0_8_3_wrote_on_duckdb_is_adopted(tmp_path: Path) -> None:
    import csv
    import tarfile

    ws = tmp_path / "ws"
    with tarfile.open(NIRS4ALL_083) as tar:
        tar.extractall(ws, filter="data")
    con = duckdb.connect(str(ws / "store.duckdb"), read_only=True)
    try:
        ids = [r[0] for r in con.execute("SELECT prediction_id FROM predictions").fetchall()]
        (refit_chain,) = con.execute(
            "SELECT chain_id FROM predictions WHERE fold_id = 'final' AND partition = 'test'"
        ).fetchone()
    finally:
        con.close()
    assert len(ids) == 32 and all(len(i) == 16 for i in ids)  # nirs4all 0.8's own ids
    parquet = pq.read_table(ws / "arrays" / "nirs4all_regression_small.parquet").to_pylist()
    by_id = {r["prediction_id"]: r for r in parquet}
    xval = Path(__file__).parents[1] / "fixtures" / "nirs4all_regression_small" / "Xval.csv"
    with xval.open() as f:
        X = np.asarray([[float(v) for v in row] for row in csv.reader(f, delimiter=";")][:5])
    with WorkspaceStore(ws) as store:  # adopted on open
        assert store.list_runs().num_rows == 1 and store.list_pipelines().num_rows == 3
        assert store.list_artifacts().num_rows == 10
        assert store.query_predictions().num_rows == 32
        for pid in ids:
            got = store.get_prediction(stored_prediction_id(pid), load_arrays=True)
            assert got is not None
            np.testing.assert_array_equal(got["y_pred"], by_id[pid]["y_pred"])
        report = store.verify()
        assert report.ok, report.problems()
        replayed = store.replay_chain(refit_chain, X)
    np.testing.assert_allclose(np.ravel(replayed), PREDICT_CHAIN_083, rtol=0, atol=1e-9)
    assert (ws / "store.duckdb.legacy-bak").is_file()
