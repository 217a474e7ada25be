"""Models and migrations agree, on every backend, and migrations go both ways.

`compare_metadata` against a freshly migrated database must report nothing; on DuckDB this
relies on the reflection in `db/duckdb_reflection.py` and the comparison rules of
`db/alembic_duckdb.py`, so the tests also prove that real differences are still reported.
Backends are parametrised by URL (`backend_url`): adding PostgreSQL is one more entry.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import BACKENDS as CONFTEST_BACKENDS
from conftest import fresh_pg_database
from sqlalchemy.engine import Engine

from nirs4all_store.db import migrate
from nirs4all_store.db.duckdb.alembic_impl import normalize_server_default
from nirs4all_store.db.duckdb.reflection import (
    install_duckdb_reflection,
    parse_duckdb_type,
    split_index_expressions,
)
from nirs4all_store.db.engine import create_store_engine, duckdb_url
from nirs4all_store.models import SKIP_ON, Base
from nirs4all_store.repositories.predictions import natural_key

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The seven workspace tables of the initial schema (later revisions add more).
CORE_TABLES = {
    "runs",
    "pipelines",
    "chains",
    "predictions",
    "prediction_arrays",
    "artifacts",
    "logs",
}

BACKENDS = tuple(b for b in ("duckdb", "sqlite", "postgresql") if b in CONFTEST_BACKENDS)


def make_url(backend: str, folder: Path, request: pytest.FixtureRequest | None = None) -> str:
    """A URL for a new, empty database of `backend` (PostgreSQL: a new database on the
    session's throwaway server)."""
    if backend == "duckdb":
        return str(duckdb_url(folder / "store.duckdb"))
    if backend == "sqlite":
        return f"sqlite:///{folder / 'store.sqlite'}"
    if backend == "postgresql" and request is not None:
        return fresh_pg_database(request.getfixturevalue("pg_url"), None)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return make_url(request.param, tmp_path, request)


@pytest.fixture
def engine_factory() -> Iterator[Callable[[str], Engine]]:
    """Engines that are disposed after the test (DuckDB keeps files locked until then)."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = create_store_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def migrated(backend_url: str, engine_factory: Callable[[str], Engine]) -> Engine:
    engine = engine_factory(backend_url)
    migrate.upgrade(engine)
    return engine


def schema_diff(engine: Engine, metadata: sa.MetaData | None = None) -> list[Any]:
    """Alembic's differences between `metadata` (default: the models) and the database."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": migrate.make_include_object(conn.dialect.name),
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata if metadata is not None else Base.metadata))


def diff_kinds(diffs: list[Any]) -> list[tuple[str, ...]]:
    """(operation, table[, column or constraint]) for every difference, flattened."""
    kinds: list[tuple[str, ...]] = []
    for diff in diffs:
        items = diff if isinstance(diff, list) else [diff]
        for item in items:
            op = item[0]
            if op in ("add_table", "remove_table"):
                kinds.append((op, item[1].name))
            elif op in ("add_column", "remove_column"):
                kinds.append((op, item[2], item[3].name))
            elif op.startswith("modify_"):
                kinds.append((op, item[2], item[3]))
            elif op in ("add_constraint", "remove_constraint", "add_index", "remove_index"):
                kinds.append((op, item[1].table.name, str(item[1].name)))
            else:
                kinds.append((op,))
    return kinds


def copy_metadata() -> sa.MetaData:
    """An editable copy of the models' metadata (`to_metadata` drops `info`: restored)."""
    copy = sa.MetaData(naming_convention=dict(Base.metadata.naming_convention))
    for table in Base.metadata.sorted_tables:
        new = table.to_metadata(copy)
        originals = {str(item.name): item for item in (*table.indexes, *table.constraints)}
        for item in (*new.indexes, *new.constraints):
            item.info.update(originals[str(item.name)].info)
    return copy


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


# -- upgrade / downgrade ---------------------------------------------------------------------


def test_upgrade_from_empty_creates_every_table(
    tmp_path: Path, engine_factory: Callable[[str], Engine]
) -> None:
    engine = engine_factory(make_url("duckdb", tmp_path))
    assert table_names(engine) == set()
    migrate.upgrade(engine)
    tables = table_names(engine)
    assert tables >= CORE_TABLES
    assert tables == set(Base.metadata.tables) | {migrate.VERSION_TABLE}
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_downgrade_upgrade_round_trip(
    backend: str,
    tmp_path: Path,
    engine_factory: Callable[[str], Engine],
    request: pytest.FixtureRequest,
) -> None:
    engine = engine_factory(make_url(backend, tmp_path, request))
    migrate.upgrade(engine)
    assert set(Base.metadata.tables) <= table_names(engine)

    migrate.downgrade(engine, "base")
    assert table_names(engine) & set(Base.metadata.tables) == set()
    with engine.connect() as conn:
        assert migrate.current_revision(conn) is None
        assert sa.inspect(conn).get_view_names() == []

    migrate.upgrade(engine)
    assert set(Base.metadata.tables) <= table_names(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD_REVISION
    assert schema_diff(engine) == []


def test_head_revision_constant_matches_scripts() -> None:
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_alembic_command_line_from_repo_root(tmp_path: Path) -> None:
    url = make_url("duckdb", tmp_path)
    script = Path(sys.executable).with_name("alembic")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "alembic"]

    def alembic(*args: str) -> None:
        result = subprocess.run(
            [*command, "-x", f"url={url}", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    alembic("upgrade", "head")
    engine = create_store_engine(url)
    try:
        assert set(Base.metadata.tables) <= table_names(engine)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION
    finally:
        engine.dispose()  # the file is locked while this process holds a connection

    alembic("downgrade", "base")
    engine = create_store_engine(url)
    try:
        assert table_names(engine) & set(Base.metadata.tables) == set()
    finally:
        engine.dispose()


# -- models == migrations ----------------------------------------------------------------------


def test_models_and_migrations_agree(migrated: Engine) -> None:
    assert schema_diff(migrated) == []


def test_copied_metadata_agrees_too(migrated: Engine) -> None:
    # The detection tests below edit a copy: the unedited copy must be clean, or they prove
    # nothing.
    assert schema_diff(migrated, copy_metadata()) == []


def test_extra_column_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    metadata.tables["runs"].append_column(sa.Column("extra", sa.Integer(), nullable=True))
    assert diff_kinds(schema_diff(migrated, metadata)) == [("add_column", "runs", "extra")]


def test_missing_table_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    metadata.remove(metadata.tables["projects"])
    assert diff_kinds(schema_diff(migrated, metadata)) == [("remove_table", "projects")]


def test_changed_type_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    metadata.tables["predictions"].c.n_samples.type = sa.String()
    metadata.tables["logs"].c.duration_ms.type = sa.Integer()
    assert sorted(diff_kinds(schema_diff(migrated, metadata))) == [
        ("modify_type", "logs", "duration_ms"),
        ("modify_type", "predictions", "n_samples"),
    ]


def test_changed_nullability_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    metadata.tables["runs"].c.error.nullable = False
    assert diff_kinds(schema_diff(migrated, metadata)) == [("modify_nullable", "runs", "error")]


def test_changed_unique_constraint_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    predictions = metadata.tables["predictions"]
    dialect = migrated.dialect.name
    natural_key = next(  # the one this backend has (DuckDB: on natural_key, elsewhere 6 columns)
        c
        for c in predictions.constraints
        if isinstance(c, sa.UniqueConstraint) and dialect not in c.info.get(SKIP_ON, ())
    )
    predictions.constraints.remove(natural_key)
    predictions.append_constraint(
        sa.UniqueConstraint("pipeline_id", "fold_id", name="uq_predictions_changed")
    )
    kinds = diff_kinds(schema_diff(migrated, metadata))
    assert ("add_constraint", "predictions", "uq_predictions_changed") in kinds
    assert any(k[0] == "remove_constraint" and k[1] == "predictions" for k in kinds)


def test_new_server_default_is_detected(migrated: Engine) -> None:
    metadata = copy_metadata()
    metadata.tables["runs"].c.status.server_default = sa.DefaultClause("running")
    assert diff_kinds(schema_diff(migrated, metadata)) == [("modify_default", "runs", "status")]


# -- DuckDB specifics ------------------------------------------------------------------------


@pytest.fixture
def duck(tmp_path: Path, engine_factory: Callable[[str], Engine]) -> Engine:
    engine = engine_factory(make_url("duckdb", tmp_path))
    migrate.upgrade(engine)
    return engine


def test_duckdb_array_depth_and_item_type_are_compared(duck: Engine) -> None:
    from nirs4all_store.types import Float64Array

    metadata = copy_metadata()
    arrays = metadata.tables["prediction_arrays"]
    arrays.c.y_proba.type = Float64Array(1)  # 2-D in the database
    arrays.c.sample_indices.type = Float64Array(1)  # BIGINT[] in the database
    assert sorted(diff_kinds(schema_diff(duck, metadata))) == [
        ("modify_type", "prediction_arrays", "sample_indices"),
        ("modify_type", "prediction_arrays", "y_proba"),
    ]


def test_duckdb_float_and_double_differ_but_synonyms_do_not(duck: Engine) -> None:
    metadata = copy_metadata()
    metadata.tables["logs"].c.duration_ms.type = sa.Float()  # 4-byte REAL: a real change
    metadata.tables["logs"].c.message.type = sa.String()  # TEXT == VARCHAR on DuckDB
    metadata.tables["runs"].c.name.type = sa.Text()
    assert diff_kinds(schema_diff(duck, metadata)) == [("modify_type", "logs", "duration_ms")]


def test_duckdb_equal_server_defaults_are_not_reported(duck: Engine) -> None:
    with duck.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE artifacts ALTER COLUMN format SET DEFAULT 'joblib'")
        conn.exec_driver_sql("ALTER TABLE artifacts ALTER COLUMN ref_count SET DEFAULT (0)")
        conn.exec_driver_sql("ALTER TABLE runs ALTER COLUMN created_at SET DEFAULT now()")
    metadata = copy_metadata()
    metadata.tables["artifacts"].c.format.server_default = sa.DefaultClause("joblib")
    metadata.tables["artifacts"].c.ref_count.server_default = sa.DefaultClause(sa.text("0"))
    metadata.tables["runs"].c.created_at.server_default = sa.DefaultClause(
        sa.text("CURRENT_TIMESTAMP")
    )
    assert schema_diff(duck, metadata) == []
    metadata.tables["artifacts"].c.format.server_default = sa.DefaultClause("pickle")
    assert diff_kinds(schema_diff(duck, metadata)) == [("modify_default", "artifacts", "format")]


def test_duckdb_reflects_indexes_constraints_and_views(duck: Engine) -> None:
    with duck.begin() as conn:
        conn.exec_driver_sql('CREATE INDEX ix_probe ON predictions("partition", dataset_name)')
        conn.exec_driver_sql("CREATE UNIQUE INDEX ux_probe ON artifacts ((lower(format)))")
        conn.exec_driver_sql("CREATE TABLE probe (a INTEGER CHECK (a > 0), b DOUBLE[3])")
        conn.exec_driver_sql("CREATE TABLE probe_pair (x INTEGER, y VARCHAR, UNIQUE (y, x))")
    with duck.connect() as conn:
        inspector = sa.inspect(conn)
        assert inspector.get_indexes("predictions") == [
            {
                "name": "ix_probe",
                "column_names": ["partition", "dataset_name"],
                "unique": False,
                "dialect_options": {},
            }
        ]
        [expression_index] = inspector.get_indexes("artifacts")
        assert expression_index["unique"] is True
        assert expression_index["column_names"] == [None]
        assert [u["column_names"] for u in inspector.get_unique_constraints("predictions")] == [
            ["natural_key"]
        ]
        assert [u["column_names"] for u in inspector.get_unique_constraints("probe_pair")] == [
            ["y", "x"]
        ]
        assert [c["sqltext"] for c in inspector.get_check_constraints("probe")] == ["(a > 0)"]
        assert inspector.get_pk_constraint("runs")["constrained_columns"] == ["run_id"]
        assert inspector.get_foreign_keys("chains") == []  # not in DuckDB's DDL, by design
        assert "v_chain_summary" in inspector.get_view_names()
        probe_b = {c["name"]: c for c in inspector.get_columns("probe")}["b"]
        assert isinstance(probe_b["type"], sa.ARRAY)
    # The extra index is a real difference too.
    assert ("remove_index", "predictions", "ix_probe") in diff_kinds(schema_diff(duck))


def test_duckdb_full_reflection_and_batch_recreate(duck: Engine) -> None:
    # Reflecting every table and view, and Alembic's batch "move and copy", both failed on
    # DuckDB with duckdb-engine's own reflection (STACK_FACTS).
    from alembic.operations import Operations

    with duck.connect() as conn:
        reflected = sa.MetaData()
        reflected.reflect(conn, views=True)
    assert set(Base.metadata.tables) | {"v_chain_summary"} <= set(reflected.tables)
    with duck.begin() as conn:
        operations = Operations(MigrationContext.configure(conn))
        with operations.batch_alter_table("artifacts", recreate="always") as batch:
            batch.alter_column("size_bytes", type_=sa.Double())
    with duck.connect() as conn:
        columns = {c["name"]: c for c in sa.inspect(conn).get_columns("artifacts")}
    assert isinstance(columns["size_bytes"]["type"], sa.Double)
    assert ("modify_type", "artifacts", "size_bytes") in diff_kinds(schema_diff(duck))


def test_reflection_install_is_per_engine(
    tmp_path: Path, engine_factory: Callable[[str], Engine]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = engine_factory(make_url("duckdb", tmp_path / "a"))
    second = engine_factory(make_url("duckdb", tmp_path / "b"))
    original_class = type(second.dialect)
    connect_listeners = len(first.dialect.dispatch.do_connect)  # the lock wait
    assert connect_listeners > 0
    assert install_duckdb_reflection(first) is True
    assert len(first.dialect.dispatch.do_connect) == connect_listeners
    assert install_duckdb_reflection(first) is True  # idempotent
    assert type(second.dialect) is original_class
    with second.connect() as conn:  # the runtime's only reflection need still works
        assert sa.inspect(conn).has_table("runs") is False
    with first.connect() as conn:
        assert sa.inspect(conn).has_table("runs") is False

    sqlite = engine_factory(make_url("sqlite", tmp_path))
    assert install_duckdb_reflection(sqlite) is False
    with pytest.raises(TypeError, match="Engine, a Connection or a Dialect"):
        install_duckdb_reflection("duckdb:///x.duckdb")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        ("VARCHAR", "VARCHAR"),
        ("DOUBLE", "DOUBLE PRECISION"),
        ("FLOAT", "REAL"),
        ("DOUBLE[][]", "DOUBLE PRECISION[][]"),
        ("BIGINT[]", "BIGINT[]"),
        ("DECIMAL(10,2)", "NUMERIC(10, 2)"),
        ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"),
        ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE"),
        ("JSON", "JSON"),
        ("BLOB", "BLOB"),
    ],
)
def test_parse_duckdb_type(data_type: str, expected: str) -> None:
    from duckdb_engine import Dialect

    assert Dialect().type_compiler.process(parse_duckdb_type(data_type)) == expected


def test_parse_duckdb_type_unknown_and_bad_input() -> None:
    with pytest.warns(sa.exc.SAWarning, match="STRUCT"):
        assert isinstance(parse_duckdb_type("STRUCT(a INTEGER)"), sa.types.NullType)
    with pytest.raises(ValueError, match="DuckDB type name"):
        parse_duckdb_type("")


def test_split_index_expressions() -> None:
    assert split_index_expressions("[a, '\"partition\"', '((d + 1))']") == [
        "a",
        '"partition"',
        "((d + 1))",
    ]
    assert split_index_expressions("['lower(a, '', b'')']") == ["lower(a, ', b')"]
    assert split_index_expressions(None) == []


@pytest.mark.parametrize(
    ("reflected", "metadata"),
    [
        ("CAST('x' AS VARCHAR)", "'x'"),
        ("'x'::text", "'x'"),
        ("(0)", "0"),
        ("1.50", "1.5"),
        ("CURRENT_TIMESTAMP", "now()"),
        ("((1 + 2))", "1 + 2"),
    ],
)
def test_equal_defaults_normalise_alike(reflected: str, metadata: str) -> None:
    assert normalize_server_default(reflected) == normalize_server_default(metadata)


@pytest.mark.parametrize(
    ("reflected", "metadata"),
    [("'X'", "'x'"), ("1", "2"), ("'1'", "1"), ("current_date", "now()")],
)
def test_different_defaults_stay_different(reflected: str, metadata: str) -> None:
    assert normalize_server_default(reflected) != normalize_server_default(metadata)


# -- revision 0005: native UUID prediction ids on DuckDB -------------------------------------

PRED_A = "3f1c2a9e-1111-4000-8000-00000000000a"
PRED_B = "3F1C2A9E-1111-4000-8000-00000000000B"  # upper case: canonicalised by the upgrade


def _duckdb_at_0004_with_predictions(
    tmp_path: Path, engine_factory: Callable[[str], Engine], *ids: str
) -> Engine:
    engine = engine_factory(make_url("duckdb", tmp_path))
    migrate.upgrade(engine, "0004")
    with engine.begin() as conn:
        for i, pid in enumerate(ids):
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (prediction_id, pipeline_id, chain_id, dataset_name,"
                    " model_name, model_class, fold_id, partition, val_score, metric, task_type,"
                    " scores, branch_id, created_at, refit_context) VALUES (:pid, 'p', 'c', 'd',"
                    " 'm', 'PLS', :fold, 'val', :score, 'rmse', 'regression', '{\"r2\": 0.5}', 0,"
                    " TIMESTAMP '2026-01-02 03:04:05', 'refit')"
                ),
                {"pid": pid, "fold": str(i), "score": 0.25 * (i + 1)},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO prediction_arrays (prediction_id, y_true, y_proba, sample_indices)"
                    " VALUES (:pid, [1.5, 2.5], [[0.25, 0.75], [1.0, 0.0]], [3, 4])"
                ),
                {"pid": pid},
            )
    return engine


def _column_type(engine: Engine, table: str, column: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns"
                    " WHERE table_name = :t AND column_name = :c"
                ),
                {"t": table, "c": column},
            ).scalar_one()
        )


def _prediction_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT p.prediction_id::VARCHAR, p.fold_id, p.val_score, p.scores::VARCHAR,"
                    " p.created_at, p.refit_context, a.y_true, a.y_proba, a.sample_indices"
                    " FROM predictions p JOIN prediction_arrays a USING (prediction_id)"
                    " ORDER BY p.fold_id"
                )
            )
        ]


@pytest.mark.skipif("duckdb" not in BACKENDS, reason="DuckDB only")
def test_0005_rebuilds_duckdb_prediction_tables_with_uuid_keys_and_keeps_rows(
    tmp_path: Path, engine_factory: Callable[[str], Engine]
) -> None:
    engine = _duckdb_at_0004_with_predictions(tmp_path, engine_factory, PRED_A, PRED_B)
    before = _prediction_rows(engine)
    assert _column_type(engine, "predictions", "prediction_id") == "VARCHAR"

    migrate.upgrade(engine)
    for table in ("predictions", "prediction_arrays"):
        assert _column_type(engine, table, "prediction_id") == "UUID"
    after = _prediction_rows(engine)
    assert after == [(before[0][0], *before[0][1:]), (before[1][0].lower(), *before[1][1:])]
    assert schema_diff(engine) == []
    with engine.connect() as conn:  # the primary key and the natural key survive the rebuild
        for statement in (
            "INSERT INTO prediction_arrays (prediction_id) VALUES ('" + PRED_A + "')",
            "INSERT INTO predictions SELECT * REPLACE (gen_random_uuid() AS prediction_id)"
            " FROM predictions LIMIT 1",
        ):
            with pytest.raises(sa.exc.IntegrityError), conn.begin():
                conn.execute(sa.text(statement))

    migrate.downgrade(engine, "0004")
    assert _column_type(engine, "predictions", "prediction_id") == "VARCHAR"
    assert _prediction_rows(engine) == after


@pytest.mark.skipif("duckdb" not in BACKENDS, reason="DuckDB only")
def test_0005_refuses_non_uuid_prediction_ids_and_changes_nothing(
    tmp_path: Path, engine_factory: Callable[[str], Engine]
) -> None:
    engine = _duckdb_at_0004_with_predictions(tmp_path, engine_factory, PRED_A, "my-own-id")
    before = _prediction_rows(engine)
    with pytest.raises(RuntimeError, match=r"not UUIDs.*'my-own-id'"):
        migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0004"
    assert _column_type(engine, "predictions", "prediction_id") == "VARCHAR"
    assert _prediction_rows(engine) == before


@pytest.mark.skipif("duckdb" not in BACKENDS, reason="DuckDB only")
def test_varchar_prediction_ids_are_reported_against_the_models(
    migrated: Engine, backend_url: str
) -> None:
    metadata = copy_metadata()
    metadata.tables["predictions"].c.prediction_id.type = sa.String()
    kinds = diff_kinds(schema_diff(migrated, metadata))
    if backend_url.startswith("duckdb"):
        assert kinds == [("modify_type", "predictions", "prediction_id")]
    else:  # text ids elsewhere: the same model type
        assert kinds == []


def _at_0004_with_key_rows(
    backend: str,
    tmp_path: Path,
    engine_factory: Callable[[str], Engine],
    request: pytest.FixtureRequest,
    rows: list[tuple[str, str, int | None]],
) -> Engine:
    """A database at 0004 with a run, a pipeline and predictions (fold, partition, branch);
    no chain, as many rows have (foreign keys hold on SQLite and PostgreSQL)."""
    engine = engine_factory(make_url(backend, tmp_path, request))
    migrate.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (run_id, name, status, created_at) "
                "VALUES ('r', 'run', 'completed', :now)"
            ),
            {"now": dt.datetime(2026, 1, 1)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO pipelines (pipeline_id, run_id, name, dataset_name, status, "
                "created_at) VALUES ('p', 'r', 'pipe', 'd', 'completed', :now)"
            ),
            {"now": dt.datetime(2026, 1, 1)},
        )
        for fold, partition, branch in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO predictions (prediction_id, pipeline_id, chain_id, dataset_name,"
                    " model_name, model_class, fold_id, partition, metric, task_type, branch_id,"
                    " created_at) VALUES (:pid, 'p', NULL, 'd', 'PLS', 'PLSRegression', :fold,"
                    " :partition, 'rmse', 'regression', :branch, :now)"
                ),
                {
                    "pid": str(uuid.uuid4()),
                    "fold": fold,
                    "partition": partition,
                    "branch": branch,
                    "now": dt.datetime(2026, 1, 1),
                },
            )
    return engine


@pytest.mark.parametrize("backend", BACKENDS)
def test_0005_gives_every_prediction_its_natural_key(
    backend: str,
    tmp_path: Path,
    engine_factory: Callable[[str], Engine],
    request: pytest.FixtureRequest,
) -> None:
    rows = [("fold_0", "val", None), ("fold_0", "test", None), ("fold_1", "val", 2)]
    engine = _at_0004_with_key_rows(backend, tmp_path, engine_factory, request, rows)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT fold_id, partition, branch_id, natural_key FROM predictions")
        ).all()
    assert sorted(((f, p, b) for f, p, b, _ in stored), key=repr) == sorted(rows, key=repr)
    for fold, partition, branch, key in stored:
        assert str(key) == natural_key("p", None, fold, partition, "PLS", branch)
    assert schema_diff(engine) == []
    migrate.downgrade(engine, "0004")
    with engine.connect() as conn:
        assert "natural_key" not in {c["name"] for c in sa.inspect(conn).get_columns("predictions")}
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_0005_refuses_predictions_stored_twice_and_changes_nothing(
    backend: str,
    tmp_path: Path,
    engine_factory: Callable[[str], Engine],
    request: pytest.FixtureRequest,
) -> None:
    """Two rows with one natural key slipped past the revision-0001 UNIQUE (a NULL branch
    and chain): the upgrade names them and leaves the database at 0004, untouched."""
    rows = [("fold_0", "val", None), ("fold_0", "val", None), ("fold_1", "val", None)]
    engine = _at_0004_with_key_rows(backend, tmp_path, engine_factory, request, rows)
    with pytest.raises(RuntimeError, match=r"share one natural key.*'fold_0', 'val'"):
        migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == "0004"
        assert "natural_key" not in {c["name"] for c in sa.inspect(conn).get_columns("predictions")}
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 3


def test_migration_natural_key_is_the_package_one() -> None:
    """Revision 0005 keeps frozen copies of the key function and its DuckDB SQL twin."""
    import importlib.util

    from nirs4all_store.repositories.predictions import NATURAL_KEY_SQL

    path = migrate.migrations_dir() / "versions" / "0005_duckdb_uuid_prediction_ids.py"
    spec = importlib.util.spec_from_file_location("rev0005", path)
    assert spec is not None and spec.loader is not None
    rev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rev)
    assert rev.NATURAL_KEY_SQL == NATURAL_KEY_SQL
    import duckdb

    con = duckdb.connect()
    for fields in [("p", None, "fold_0", "val", "PLS", None), ("p", "c", "avg", "test", "é", 3)]:
        expected = natural_key(*fields)
        assert rev.natural_key(fields) == expected
        sql_key = con.execute(
            f"SELECT {NATURAL_KEY_SQL} FROM (SELECT ? AS pipeline_id, ? AS chain_id, "
            "? AS fold_id, ? AS partition, ? AS model_name, ?::INTEGER AS branch_id)",
            list(fields),
        ).fetchone()[0]
        assert str(sql_key) == expected
