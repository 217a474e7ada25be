"""The seed's row API, call by call, against the store it replaces and raw DuckDB writers.

Workload (issue 16): 2 runs x 25 pipelines; per pipeline 6 `save_artifact` (fitted
scikit-learn scalers), 1 `save_chain`, 5 folds x 3 partitions of `save_prediction` +
`save_prediction_arrays` (200-sample y_true/y_pred), 4 `log_step`, `complete_pipeline`:
750 predictions, 300 artifacts, 200 log steps. Modes, timed in the same run:

- ours, plain: every call its own transaction (committed when it returns);
- ours, transaction: one `store.transaction()` per pipeline (write-behind: row calls are
  queued and flushed through the bulk paths at commit);
- ours, write_behind: `WorkspaceStore(..., write_behind=True)` (a background flusher);
- reference: nirs4all's raw-DuckDB WorkspaceStore, when `--reference PATH` names a folder
  holding `nirs4all/pipeline/storage/workspace_store.py` (skipped with a message otherwise);
- raw rowwise: the same rows (read back from the plain run) inserted one statement per row
  in autocommit through the duckdb module: the per-commit floor (and the same with each
  artifact's file written durably before its row, as the store does);
- raw Arrow: the same rows, one Arrow insert per table in one transaction.

    python benchmarks/bench_row_api.py [--reference PATH] [--backend duckdb] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from _common import BACKENDS, fmt_s, new_pg_database, postgres_server
from sklearn.preprocessing import StandardScaler

from nirs4all_store import WorkspaceStore

RUNS, PIPELINES, FOLDS, PARTITIONS, SAMPLES = 2, 25, 5, ("train", "val", "test"), 200
ARTIFACTS_PER_PIPELINE, LOGS_PER_PIPELINE = 6, 4
TABLES = ("runs", "pipelines", "artifacts", "chains", "predictions", "prediction_arrays", "logs")


def fitted_objects(n: int) -> list[Any]:
    """Distinct small fitted scalers (each pickles to different bytes)."""
    rng = np.random.default_rng(0)
    return [StandardScaler().fit(rng.normal(size=(20, 8))) for _ in range(n)]


def arrays(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [(rng.normal(size=SAMPLES), rng.normal(size=SAMPLES)) for _ in range(n)]


def workload(
    store: Any, objects: list[Any], ys: list[Any], per_pipeline: Callable[[], Any] = nullcontext
) -> None:
    """The seed workload through `store`'s row API (ours or the reference's)."""
    k = p = 0
    for r in range(RUNS):
        run_id = store.begin_run(f"run {r}", {"cv": FOLDS}, [{"name": "d", "path": "d"}])
        for i in range(PIPELINES):
            with per_pipeline():
                pipe = store.begin_pipeline(run_id, f"p{i}", {"i": i}, [], "d", "h")
                ids = [
                    store.save_artifact(objects[k + j], "StandardScaler", "transformer", "joblib")
                    for j in range(ARTIFACTS_PER_PIPELINE)
                ]
                k += ARTIFACTS_PER_PIPELINE
                chain = store.save_chain(
                    pipe,
                    [{"step_idx": 0, "operator_class": "StandardScaler"}],
                    0,
                    "StandardScaler",
                    "SNV",
                    "per_fold",
                    {f"fold_{f}": ids[f] for f in range(FOLDS)},
                    {"0": ids[FOLDS]},
                )
                for fold in range(FOLDS):
                    for part in PARTITIONS:
                        y_true, y_pred = ys[p]
                        p += 1
                        pid = store.save_prediction(
                            pipe, chain, "d", "PLS", "PLSRegression", str(fold), part,
                            0.5, 0.6, 0.4, "rmse", "regression", SAMPLES, 8,
                            {"val": {"rmse": 0.5}}, {}, None, None, 0, 0.0,
                        )  # fmt: skip
                        store.save_prediction_arrays(pid, y_true, y_pred)
                for step in range(LOGS_PER_PIPELINE):
                    store.log_step(pipe, step, "StandardScaler", "fit", 3)
                store.complete_pipeline(pipe, 0.5, 0.6, "rmse", 100)
        store.complete_run(run_id, {"pipelines": PIPELINES})


def load_reference(folder: Path) -> type[Any]:
    """The reference's WorkspaceStore from `folder`, without running nirs4all's __init__
    (which imports the whole ML stack): its parent packages are bare namespace modules."""
    target = folder / "nirs4all" / "pipeline" / "storage" / "workspace_store.py"
    if not target.is_file():
        raise FileNotFoundError(f"{target} not found")
    for name, sub in (
        ("nirs4all", "nirs4all"),
        ("nirs4all.pipeline", "nirs4all/pipeline"),
        ("nirs4all.pipeline.storage", "nirs4all/pipeline/storage"),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(folder / sub)]
        sys.modules[name] = module
    return importlib.import_module("nirs4all.pipeline.storage.workspace_store").WorkspaceStore


@contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="n4a-rowapi-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def timed_store(open_store: Callable[[Path], Any], mode: str) -> tuple[float, dict[str, Any]]:
    objects = fitted_objects(RUNS * PIPELINES * ARTIFACTS_PER_PIPELINE)
    ys = arrays(RUNS * PIPELINES * FOLDS * len(PARTITIONS))
    with scratch() as folder:
        store = open_store(folder)
        per: Callable[[], AbstractContextManager[Any]] = nullcontext
        if mode == "transaction":
            per = store.transaction
        start = time.perf_counter()
        workload(store, objects, ys, per)
        if hasattr(store, "flush"):
            store.flush()
        seconds = time.perf_counter() - start
        rows = read_back(store) if isinstance(store, WorkspaceStore) else {}
        store.close()
    return seconds, rows


def read_back(store: WorkspaceStore) -> dict[str, Any]:
    """Every row the workload wrote, as Arrow tables (the raw writers' input), and the bytes
    of every artifact file (`"files"`: relative path -> bytes)."""
    if store.engine.dialect.name != "duckdb":
        return {}
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        order = {"prediction_arrays": "prediction_id", "runs": "created_at"}
        rows = {
            t: raw.sql(
                f"SELECT * FROM {t} ORDER BY {order.get(t, 'created_at')}, 1"
            ).to_arrow_table()
            for t in TABLES
        }
    paths = rows["artifacts"].column("artifact_path").to_pylist()
    rows["files"] = {path: (store.artifacts_path / path).read_bytes() for path in paths}
    return rows


def durable_write(target: Path, data: bytes) -> None:
    """What any durable file store must do: temp file, write, fsync, rename, fsync folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def per_pipeline(rows: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows (and artifact files) of each pipeline, in the order they were recorded."""
    import pyarrow.compute as pc

    groups = []
    pipelines = rows["pipelines"].column("pipeline_id").to_pylist()
    paths = list(rows["files"])
    for i, pipeline_id in enumerate(pipelines):
        group: dict[str, Any] = {}
        for table in ("pipelines", "chains", "predictions", "logs"):
            group[table] = rows[table].filter(pc.equal(rows[table]["pipeline_id"], pipeline_id))
        ids = group["predictions"].column("prediction_id")
        arrays = rows["prediction_arrays"]
        group["prediction_arrays"] = arrays.filter(pc.is_in(arrays["prediction_id"], ids))
        k = i * ARTIFACTS_PER_PIPELINE
        group["artifacts"] = rows["artifacts"].slice(k, ARTIFACTS_PER_PIPELINE)
        group["files"] = {
            path: rows["files"][path] for path in paths[k : k + ARTIFACTS_PER_PIPELINE]
        }
        groups.append(group)
    return groups


def raw_arrow_per_pipeline(rows: dict[str, Any]) -> float:
    """The like-for-like floor of the transaction mode: per pipeline, its artifact files
    written durably, then its rows in one Arrow insert per table and one commit."""
    import duckdb

    groups = per_pipeline(rows)
    with scratch() as folder:
        db = empty_duckdb(folder)
        con = duckdb.connect(str(db))
        start = time.perf_counter()
        arrow_into(con, {"runs": rows["runs"]})
        for group in groups:
            for path, data in group["files"].items():
                durable_write(db.parent / "artifacts" / path, data)
            con.execute("BEGIN")
            arrow_into(con, {t: group[t] for t in TABLES if t != "runs"})
            con.execute("COMMIT")
        seconds = time.perf_counter() - start
        con.close()
    return seconds


def arrow_into(con: Any, tables: dict[str, Any]) -> None:
    """One Arrow insert per table, in the order given (parents first)."""
    for table, batch in tables.items():
        con.register("batch", batch)
        con.execute(f"INSERT INTO {table} SELECT * FROM batch")
        con.unregister("batch")


def empty_duckdb(folder: Path) -> Path:
    WorkspaceStore(folder / "ws").close()
    return folder / "ws" / "store.duckdb"


def raw_rowwise(rows: dict[str, Any], with_files: bool = False) -> float:
    """The same rows, one autocommitted INSERT each (the per-commit floor); `with_files`:
    each artifact's file written durably before its row, as the store must."""
    import duckdb

    with scratch() as folder:
        db = empty_duckdb(folder)
        con = duckdb.connect(str(db))
        batches = {t: rows[t].to_pylist() for t in TABLES}
        start = time.perf_counter()
        for table in TABLES:
            columns = rows[table].column_names
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            for record in batches[table]:
                if with_files and table == "artifacts":
                    path = record["artifact_path"]
                    durable_write(db.parent / "artifacts" / path, rows["files"][path])
                con.execute(sql, [record[c] for c in columns])  # autocommit: one commit each
        seconds = time.perf_counter() - start
        con.close()
    return seconds


def raw_arrow(rows: dict[str, Any]) -> float:
    import duckdb

    with scratch() as folder:
        con = duckdb.connect(str(empty_duckdb(folder)))
        start = time.perf_counter()
        con.execute("BEGIN")
        arrow_into(con, {t: rows[t] for t in TABLES})
        con.execute("COMMIT")
        seconds = time.perf_counter() - start
        con.close()
    return seconds


def ours(backend: str, pg: str | None, **kwargs: Any) -> Callable[[Path], WorkspaceStore]:
    def open_store(folder: Path) -> WorkspaceStore:
        url = None
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'store.sqlite'}"
        elif backend == "postgresql":
            assert pg is not None
            url = new_pg_database(pg)
        return WorkspaceStore(folder / "ws", url=url, **kwargs)

    return open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="folder holding the reference nirs4all")
    parser.add_argument("--backend", default="duckdb", choices=BACKENDS)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many rounds")
    parser.add_argument("--modes", default="plain,transaction,write_behind")
    args = parser.parse_args()
    n_calls = RUNS * (2 + PIPELINES * (3 + ARTIFACTS_PER_PIPELINE + FOLDS * 6 + LOGS_PER_PIPELINE))
    print(f"# {args.backend}: {RUNS} runs x {PIPELINES} pipelines, {n_calls} row calls")
    if args.reference is None:
        print("reference: skipped (--reference PATH: a folder holding nirs4all/pipeline/storage)")
    with postgres_server(args.backend == "postgresql") as pg:
        samples = rounds(args, pg)
    times = {label: float(np.median(values)) for label, values in samples.items()}
    for label, values in samples.items():
        runs = ", ".join(fmt_s(v) for v in values)
        print(f"{label:<44}{fmt_s(times[label]):>10}   (rounds: {runs})")
    print("\nratios: median of the per-round ratios (range over rounds)")
    for label, base in (
        (REFERENCE, "ours, plain"),
        (ROWWISE, "ours, plain"),
        (ROWWISE_FILES, "ours, plain"),
        (ARROW, "ours, transaction"),
        (ARROW, "ours, write_behind"),
        (ARROW_FILES, "ours, transaction"),
        (ARROW_FILES, "ours, write_behind"),
    ):
        if label in samples and base in samples:
            ratios = [a / b for a, b in zip(samples[base], samples[label], strict=True)]
            print(
                f"{base} / {label}: {float(np.median(ratios)):.2f}x"
                f"  ({min(ratios):.2f}-{max(ratios):.2f})"
            )


REFERENCE = "reference (nirs4all raw DuckDB), row API"
ROWWISE = "raw DuckDB rowwise autocommit (floor)"
ROWWISE_FILES = "raw rowwise + artifact files written durably"
ARROW = "raw DuckDB Arrow, one transaction"
ARROW_FILES = "raw Arrow + files, a commit per pipeline"


def rounds(args: argparse.Namespace, pg: str | None) -> dict[str, list[float]]:
    """Every measurement once per round, rounds repeated: a machine whose disk slows down
    or speeds up over minutes (a shared VM's does) shifts all of them alike, so the ratios
    compare runs made minutes apart at most."""
    samples: dict[str, list[float]] = {}
    rows: dict[str, Any] = {}
    reference = None
    if args.reference is not None:
        reference = load_reference(args.reference.expanduser().resolve())
    for _ in range(args.repeat):
        for mode in args.modes.split(","):
            kwargs = {"write_behind": True} if mode == "write_behind" else {}
            seconds, back = timed_store(ours(args.backend, pg, **kwargs), mode)
            samples.setdefault(f"ours, {mode}", []).append(seconds)
            rows = rows or back
        if reference is not None:
            samples.setdefault(REFERENCE, []).append(timed_store(reference, "plain")[0])
        if rows:
            samples.setdefault(ROWWISE, []).append(raw_rowwise(rows))
            samples.setdefault(ROWWISE_FILES, []).append(raw_rowwise(rows, with_files=True))
            samples.setdefault(ARROW, []).append(raw_arrow(rows))
            samples.setdefault(ARROW_FILES, []).append(raw_arrow_per_pipeline(rows))
    return samples


if __name__ == "__main__":
    main()
