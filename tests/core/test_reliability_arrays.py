"""Issue 15, item 11: the binary array paths (DuckDB: Arrow both ways; PostgreSQL: binary COPY
of the raw bytes on write, a binary-format cursor on read) give back exactly what was saved,
on every backend; revisions 0007 (STORAGE EXTERNAL on PostgreSQL) and 0008 (bytea columns
on PostgreSQL, existing rows converted both ways)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from helpers import prediction_record
from sqlalchemy.engine import Engine

from nirs4all_store import WorkspaceStore
from nirs4all_store.db import migrate
from nirs4all_store.db.engine import create_store_engine, duckdb_url
from nirs4all_store.validation import ARRAY_FIELDS


def test_arrays_round_trip_exactly(store: WorkspaceStore) -> None:
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    n = 50_000
    rng = np.random.default_rng(7)
    y_true = rng.normal(size=n)
    y_true[[0, 5]] = [np.nan, np.inf]
    record = prediction_record(pipeline_id, None, n=n)
    record |= {
        "y_true": y_true,
        "y_pred": -y_true,
        "y_proba": rng.random((n, 3)),
        "sample_indices": np.arange(n, dtype=np.int64) * (2**40),
        "weights": np.array([0.5, 0.25, 0.25]),
    }
    small = prediction_record(pipeline_id, None, fold="fold_1", n=1)
    ids = store.save_predictions([record, small])
    got = store.get_prediction(ids[0], load_arrays=True)
    for field in ("y_true", "y_pred", "y_proba", "sample_indices", "weights"):
        np.testing.assert_array_equal(got[field], record[field], err_msg=field)
        assert got[field].shape == np.asarray(record[field]).shape, field
    assert got["sample_indices"].dtype == np.int64
    one = store.get_prediction(ids[1], load_arrays=True)
    np.testing.assert_array_equal(one["y_true"], small["y_true"])
    assert one["y_true"].shape == (1,)


def _bits(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr).tobytes()


def test_large_arrays_round_trip_bit_identical(store: WorkspaceStore, tmp_path: Path) -> None:
    """2e6-item arrays take the binary paths (Arrow on DuckDB, COPY / binary array_send on
    PostgreSQL): every bit comes back (NaN, +-inf, -0.0), with its shape and dtype, writable,
    through `save_predictions`, `save_prediction_arrays` and the Parquet export."""
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    n = 2_000_000
    rng = np.random.default_rng(11)
    y_true = rng.normal(size=n)
    y_true[[0, 1, 2, 3, n - 1]] = [np.nan, np.inf, -np.inf, -0.0, 5e-324]
    arrays = {
        "y_true": y_true,
        "y_pred": y_true[::-1].copy(),
        "y_proba": rng.random((n, 2)),
        "sample_indices": rng.integers(-(2**62), 2**62, size=n),
        "weights": np.array([np.nan, 0.5]),
    }
    record = prediction_record(pipeline_id, None, n=n) | arrays
    bare = prediction_record(pipeline_id, None, fold="fold_1", n=3)
    for field in ("y_true", "y_pred", "sample_indices"):
        bare[field] = None  # a prediction without arrays reads back as None everywhere
    first, second = store.save_predictions([record, bare])

    def check(got: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
        for field, value in expected.items():
            assert got[field].dtype == value.dtype, field
            assert got[field].shape == value.shape, field
            assert _bits(got[field]) == _bits(value), field
            assert got[field].flags.writeable, field

    check(store.get_prediction(first, load_arrays=True), arrays)
    assert all(store.get_prediction(second, load_arrays=True)[f] is None for f in arrays)

    replaced = {"y_true": arrays["y_pred"], "y_proba": arrays["y_proba"][:, ::-1]}
    store.save_prediction_arrays(first, **replaced)
    got = store.get_prediction(first, load_arrays=True)
    check(got, {k: np.ascontiguousarray(v) for k, v in replaced.items()})
    assert got["y_pred"] is None and got["sample_indices"] is None

    path = store.export_predictions_parquet(tmp_path / "p.parquet", include_arrays=True)
    table = pq.read_table(path).to_pydict()
    row = table["prediction_id"].index(first)
    np.testing.assert_array_equal(table["y_true"][row], arrays["y_pred"])
    assert table["y_true"][table["prediction_id"].index(second)] is None


def test_many_small_and_one_large_prediction_in_one_call(store: WorkspaceStore) -> None:
    """A batch of a few rows but many items goes through the bulk path in one piece."""
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    records = [prediction_record(pipeline_id, None, fold=f"fold_{i}", n=5) for i in range(3)]
    records.append(prediction_record(pipeline_id, None, fold="fold_big", n=300_000))
    records[1]["y_proba"] = np.arange(10.0).reshape(5, 2)
    ids = store.save_predictions(records)
    for prediction_id, record in zip(ids, records, strict=True):
        got = store.get_prediction(prediction_id, load_arrays=True)
        assert _bits(got["y_true"]) == _bits(record["y_true"])
        assert _bits(got["sample_indices"]) == _bits(np.asarray(record["sample_indices"]))
        if "y_proba" in record:
            np.testing.assert_array_equal(got["y_proba"], record["y_proba"])
    assert store.get_prediction(ids[0], load_arrays=True)["y_proba"] is None


def test_null_items_written_outside_the_store_read_as_before(
    store: WorkspaceStore, backend: str
) -> None:
    """NULL items inside an array (never written by the store; legacy or hand-made rows) are
    read as NaN, as the Python-list path did, next to rows the fast path decodes."""
    if backend != "duckdb":  # PostgreSQL's NULL items: revision 0008 converts them (below)
        pytest.skip(f"{backend} stores raw float64 bytes: no NULL items possible")
    pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
    odd, plain = store.save_predictions(
        [prediction_record(pipeline_id, None, fold=f"fold_{i}", n=3) for i in range(2)]
    )
    with store.transaction() as session:
        session.execute(
            sa.text(
                "UPDATE prediction_arrays SET y_pred = [1.5, NULL, -2.0] WHERE prediction_id = :p"
            ),
            {"p": odd},
        )
    got = store.get_prediction(odd, load_arrays=True)
    np.testing.assert_array_equal(got["y_pred"], [1.5, np.nan, -2.0])
    assert store.get_prediction(plain, load_arrays=True)["y_pred"].shape == (3,)


# -- revision 0007: PostgreSQL array columns stored EXTERNAL (no pglz) ---------------------


def _storage(engine: Engine) -> dict[str, str]:
    """attstorage of the array columns on PostgreSQL ('e' external, 'x' extended)."""
    query = sa.text(
        "SELECT attname, attstorage FROM pg_attribute "
        "WHERE attrelid = 'prediction_arrays'::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attname <> 'prediction_id'"
    )
    with engine.connect() as conn:
        return {name: storage for name, storage in conn.execute(query).all()}


def _stored_size(engine: Engine, prediction_id: str) -> int | None:
    """Bytes PostgreSQL keeps for a row's y_true (compressed or not); None elsewhere."""
    if engine.dialect.name != "postgresql":
        return None
    query = sa.text("SELECT pg_column_size(y_true) FROM prediction_arrays WHERE prediction_id = :p")
    with engine.connect() as conn:
        return int(conn.execute(query, {"p": prediction_id}).scalar_one())


def test_0007_migrates_both_ways_and_keeps_arrays(
    open_store: Callable[..., WorkspaceStore],
    database_url: str | None,
    workspace: Path,
    backend: str,
) -> None:
    """Upgrade sets STORAGE EXTERNAL on PostgreSQL (no-op on DuckDB and SQLite), downgrade
    restores EXTENDED; arrays stored compressed before the revision read back after it (and
    after 0008, which keeps EXTERNAL on its bytea columns)."""
    url = database_url or str(duckdb_url(workspace / "store.duckdb"))
    y = np.full(200_000, 0.5)  # compressible: pglz shrinks it under EXTENDED
    with open_store() as store:
        pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
        (old,) = store.save_predictions(
            [prediction_record(pipeline_id, None, n=len(y)) | {"y_true": y}]
        )
    engine = create_store_engine(url)
    try:
        migrate.downgrade(engine, "0006")
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == "0006"
        if backend == "postgresql":
            assert set(_storage(engine).values()) == {"x"}
            with engine.begin() as conn:  # y_true as 0006 wrote it: DOUBLE PRECISION[]
                conn.execute(
                    sa.text(
                        "UPDATE prediction_arrays SET y_true = array_fill(0.5::float8, "
                        "ARRAY[:n]) WHERE prediction_id = :p"
                    ),
                    {"n": len(y), "p": old},
                )
            old_size = _stored_size(engine, old)
            assert old_size is not None and old_size < y.nbytes
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION == "0008"
        if backend == "postgresql":
            assert _storage(engine) == dict.fromkeys(ARRAY_FIELDS, "e")
        with open_store() as store:
            (new,) = store.save_predictions(
                [prediction_record(pipeline_id, None, fold="fold_1", n=len(y)) | {"y_true": y}]
            )
            for prediction_id in (old, new):
                got = store.get_prediction(prediction_id, load_arrays=True)
                assert _bits(got["y_true"]) == _bits(y)
        if backend == "postgresql":
            assert _stored_size(engine, new) >= y.nbytes  # EXTERNAL: stored uncompressed
    finally:
        engine.dispose()


# -- revision 0008: PostgreSQL array columns hold raw little-endian bytes ------------------


def _column_types(engine: Engine) -> dict[str, str]:
    """The stored types of the array columns (`bytea`, `_float8` (float8[]), ... on
    PostgreSQL, whatever the catalog says elsewhere)."""
    query = {
        "sqlite": "SELECT name, type FROM pragma_table_info('prediction_arrays')",
        "duckdb": "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'prediction_arrays'",
        "postgresql": "SELECT column_name, udt_name FROM information_schema.columns "
        "WHERE table_name = 'prediction_arrays'",
    }[engine.dialect.name]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query)).all()
    return {name: str(kind) for name, kind in rows if name != "prediction_id"}


def _pg_native(engine: Engine, prediction_id: str, column: str) -> np.ndarray | None:
    """A DOUBLE PRECISION[] / BIGINT[] value (revision 0007) decoded here from `array_send`
    (independently of the migration's decoder): its shape and every item's bits."""
    query = sa.text(
        f"SELECT array_send({column}), array_dims({column}) FROM prediction_arrays "
        "WHERE prediction_id = :p"
    )
    with engine.connect() as conn:
        raw, dims = conn.execute(query, {"p": prediction_id}).one()
    if raw is None:
        return None
    ndim, has_null, oid = np.frombuffer(raw, ">i4", count=3)
    assert has_null == 0
    if ndim == 0:
        return np.empty(0)
    shape = tuple(np.frombuffer(raw, ">i4", count=2 * ndim, offset=12)[::2])
    element = ">i8" if oid == 20 else ">f8"
    items = np.frombuffer(raw, [("n", ">i4"), ("v", element)], offset=12 + 8 * ndim)
    assert (items["n"] == 8).all() and dims is not None
    return items["v"].astype(element.replace(">", "<")).reshape(shape)


def _odd_floats(n: int) -> np.ndarray:
    """n doubles led by every value a text round trip could change: NaN payloads, -NaN,
    +-inf, -0.0, the smallest subnormal, a subnormal, the largest double."""
    special = np.array(
        [0x7FF8000000000123, 0xFFF8000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
         0x8000000000000000, 0x1, 0x000FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF],
        dtype="<u8",
    ).view("<f8")  # fmt: skip
    values = np.random.default_rng(3).normal(size=n)
    values[: len(special)] = special
    return values


def test_0008_converts_arrays_both_ways_exactly(
    open_store: Callable[..., WorkspaceStore],
    database_url: str | None,
    workspace: Path,
    backend: str,
) -> None:
    """PostgreSQL: downgrade to 0007 gives DOUBLE PRECISION[] / BIGINT[] holding every bit the
    store had written as bytes; upgrade turns those (and rows written at 0007: NULL items,
    empty arrays, a 1-D y_proba) back into bytea, exactly. DuckDB and SQLite: both no-ops."""
    url = database_url or str(duckdb_url(workspace / "store.duckdb"))
    n = 1_000_000  # 6e6 items: larger than one conversion batch (2e6 items)
    arrays = {
        "y_true": _odd_floats(n),
        "y_pred": _odd_floats(n)[::-1].copy(),
        "y_proba": _odd_floats(2 * n).reshape(n, 2),
        "sample_indices": np.random.default_rng(4).integers(-(2**63), 2**63 - 1, size=n),
        "weights": _odd_floats(n),
    }
    arrays["sample_indices"][:2] = [-(2**63), 2**63 - 1]
    with open_store() as store:
        pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
        big, bare, odd = store.save_predictions(
            [
                prediction_record(pipeline_id, None, n=n) | arrays,
                prediction_record(pipeline_id, None, fold="fold_1", n=3)
                | dict.fromkeys(("y_true", "y_pred", "sample_indices")),
                prediction_record(pipeline_id, None, fold="fold_2", n=3),
            ]
        )
        small = store.get_prediction(odd, load_arrays=True)
    engine = create_store_engine(url)
    try:
        before = _column_types(engine)
        migrate.downgrade(engine, "0007")
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == "0007"
        if backend != "postgresql":
            assert _column_types(engine) == before
        else:
            assert before == dict.fromkeys(ARRAY_FIELDS, "bytea")
            native = dict.fromkeys(ARRAY_FIELDS, "_float8") | {"sample_indices": "_int8"}
            assert _column_types(engine) == native
            assert _storage(engine) == dict.fromkeys(ARRAY_FIELDS, "e")
            for field, value in arrays.items():
                assert _bits(_pg_native(engine, big, field)) == _bits(value), field
                assert _pg_native(engine, big, field).shape == value.shape, field
            assert _pg_native(engine, odd, "weights") is None  # NULL arrays stay NULL
            with engine.begin() as conn:  # rows as 0007 could hold them, never written so now
                conn.execute(
                    sa.text(
                        "UPDATE prediction_arrays SET y_pred = ARRAY[1.5, NULL, -2.0]::float8[], "
                        "sample_indices = '{}', y_proba = ARRAY[0.25, 0.75]::float8[] "
                        "WHERE prediction_id = :p"
                    ),
                    {"p": odd},
                )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION
        assert _column_types(engine) == before
        if backend == "postgresql":
            assert _storage(engine) == dict.fromkeys(ARRAY_FIELDS, "e")
        with open_store() as store:
            got = store.get_prediction(big, load_arrays=True)
            for field, value in arrays.items():
                assert got[field].dtype == value.dtype and got[field].shape == value.shape
                assert _bits(got[field]) == _bits(value), field
            assert all(
                store.get_prediction(bare, load_arrays=True)[f] is None
                for f in ("y_true", "y_pred", "sample_indices")
            )
            got = store.get_prediction(odd, load_arrays=True)
        if backend == "postgresql":
            np.testing.assert_array_equal(got["y_pred"], [1.5, np.nan, -2.0])
            assert got["sample_indices"].shape == (0,)
            assert got["sample_indices"].dtype == np.int64
            np.testing.assert_array_equal(got["y_proba"], [[0.25], [0.75]])
        else:
            for field in ("y_true", "y_pred", "sample_indices"):
                assert _bits(got[field]) == _bits(small[field]), field
        np.testing.assert_array_equal(got["y_true"], small["y_true"])
        assert got["weights"] is None
    finally:
        engine.dispose()


def test_0008_refuses_an_array_it_cannot_convert(
    open_store: Callable[..., WorkspaceStore], database_url: str | None, backend: str
) -> None:
    """A NULL item in an int64 array (hand-made; NaN cannot stand for it) stops the upgrade
    with an error naming the prediction and the column; the database stays at 0007."""
    if backend != "postgresql":
        pytest.skip("revision 0008 converts PostgreSQL columns only")
    with open_store() as store:
        pipeline_id = store.begin_pipeline(store.begin_run("r"), "p", dataset_name="wheat")
        (odd,) = store.save_predictions([prediction_record(pipeline_id, None, n=3)])
    assert database_url is not None
    engine = create_store_engine(database_url)
    try:
        migrate.downgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE prediction_arrays SET sample_indices = ARRAY[1, NULL, 3]::int8[] "
                    "WHERE prediction_id = :p"
                ),
                {"p": odd},
            )
        with pytest.raises(RuntimeError, match=f"sample_indices of prediction '{odd}'"):
            migrate.upgrade(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == "0007"
        assert _column_types(engine)["sample_indices"] == "_int8"
        assert _pg_native(engine, odd, "y_true") is not None
    finally:
        engine.dispose()
