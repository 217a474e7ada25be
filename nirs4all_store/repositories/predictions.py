"""Data access for predictions and their dense arrays.

Bulk writes are the norm (STACK_FACTS: row inserts ~3-4k rows/s on every engine, an Arrow
insert through DuckDB's raw connection ~345k rows/s). On DuckDB `insert_many` hands Arrow
tables to the raw connection inside the SQLAlchemy transaction; elsewhere it uses Core
executemany (insertmanyvalues on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from nirs4all_store.models import Pipeline, Prediction, PredictionArrays
from nirs4all_store.repositories import prediction_export
from nirs4all_store.repositories.affected import rows_affected
from nirs4all_store.repositories.base import (
    arrow_insert,
    forget_known,
    insert_arrow_table,
    rows_to_arrow,
)
from nirs4all_store.repositories.prediction_arrays import (
    arrays_arrow,
    pg_copy_arrays,
    read_arrays,
)
from nirs4all_store.validation import (
    ARRAY_FIELDS,
    FILTERS,
    PARTITIONS,
    check_choice,
    check_filter,
    check_id,
    uuid_or_none,
)

T = Prediction.__table__
A = PredictionArrays.__table__
P = Pipeline.__table__
PREDICTION_COLUMNS = tuple(c.name for c in T.columns)


def natural_key(
    pipeline_id: str,
    chain_id: str | None,
    fold_id: str,
    partition: str,
    model_name: str,
    branch_id: int | None,
) -> str:
    """The natural key of a prediction as one UUID: the MD5 of its six fields joined by
    U+001F, a missing chain or branch spelled ''. Stored in `natural_key` (unique), because
    a UNIQUE over the six nullable columns would let NULLs repeat. `NATURAL_KEY_SQL` is the
    same function in DuckDB's SQL (migrations and legacy adoption)."""
    text = "\x1f".join(
        (
            pipeline_id,
            chain_id or "",
            fold_id,
            partition,
            model_name,
            "" if branch_id is None else str(branch_id),
        )
    )
    return str(uuid.UUID(bytes=hashlib.md5(text.encode(), usedforsecurity=False).digest()))


#: `natural_key` in DuckDB SQL over a predictions row (md5() is the hex of the UTF-8 bytes).
NATURAL_KEY_SQL = (
    "md5(concat_ws(chr(31), pipeline_id, coalesce(chain_id, ''), fold_id, partition, "
    "model_name, coalesce(CAST(branch_id AS VARCHAR), '')))::UUID"
)


def with_natural_key(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its `natural_key` (computed where rows are inserted: on DuckDB by SQL)."""
    row["natural_key"] = natural_key(
        row["pipeline_id"],
        row["chain_id"],
        row["fold_id"],
        row["partition"],
        row["model_name"],
        row["branch_id"],
    )
    return row


#: Array items (all fields of a batch) from which DuckDB inserts through Arrow even for a
#: few rows. Core binds Python lists, ~0.6 us per double: one 2 x 1e7 prediction took 12.8 s
#: and ~3 GB peak, 1.6-2.4 s through Arrow (most of it DuckDB's commit). Below it Core is
#: cheaper: 200-sample arrays cost ~9-10 ms per `save_prediction_arrays`, ~10.5-13 via Arrow.
ARROW_MIN_ITEMS = 10_000
#: Array rows from which DuckDB inserts through Arrow whatever their size: executemany runs
#: one statement per row (~1 ms each), an Arrow registration costs ~3 ms (STACK_FACTS); a
#: write-behind flush of one pipeline (15 rows of 200-sample arrays) took 19 ms row by row.
ARRAYS_ARROW_MIN_ROWS = 4


def _items(arrays: Sequence[dict[str, Any]]) -> int:
    return sum(a[f].size for a in arrays for f in ARRAY_FIELDS if a[f] is not None)


class PredictionRepository:
    """Predictions (scores per fold and partition) and their arrays."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- writes -------------------------------------------------------------------------
    def insert_many(self, rows: Sequence[dict[str, Any]], arrays: Sequence[dict[str, Any]]) -> None:
        """Insert validated rows and arrays (parents must have been checked by the caller)."""
        if not rows and not arrays:
            return
        conn = self.session.connection()
        if conn.dialect.name == "duckdb":
            raw = conn.connection.driver_connection
            if len(rows) == 1:
                # One row: a Core insert (~1 ms) instead of an Arrow registration (~4.5 ms,
                # measured per save_prediction); the JSON text is the same (types.json_text).
                self.session.execute(sa.insert(T), [with_natural_key(dict(rows[0]))])
            elif rows:
                arrow_insert(
                    raw,
                    "predictions",
                    insert_arrow_table(T, rows),
                    computed={"natural_key": NATURAL_KEY_SQL},
                )
            if len(arrays) >= ARRAYS_ARROW_MIN_ROWS or _items(arrays) >= ARROW_MIN_ITEMS:
                arrow_insert(raw, "prediction_arrays", arrays_arrow(arrays))
            elif arrays:
                self.session.execute(sa.insert(A), list(arrays))
            return
        if rows:
            self.session.execute(sa.insert(T), [with_natural_key(row) for row in rows])
        if arrays and conn.dialect.name == "postgresql":
            pg_copy_arrays(conn.connection.driver_connection, arrays)
        elif arrays:
            self.session.execute(sa.insert(A), list(arrays))

    def delete(self, prediction_ids: sa.Select[Any] | list[str]) -> int:
        """Delete predictions and their arrays (arrays first: DuckDB has no cascade).

        Returns the number of rows deleted, arrays included."""
        forget_known(self.session)
        if isinstance(prediction_ids, list):
            prediction_ids = [c for c in map(uuid_or_none, prediction_ids) if c is not None]
            if not prediction_ids:
                return 0
        arrays = rows_affected(
            self.session, sa.delete(A).where(A.c.prediction_id.in_(prediction_ids))
        )
        return arrays + rows_affected(
            self.session, sa.delete(T).where(T.c.prediction_id.in_(prediction_ids))
        )

    def delete_arrays(self, prediction_ids: list[str]) -> int:
        prediction_ids = [c for c in map(uuid_or_none, prediction_ids) if c is not None]
        return rows_affected(
            self.session, sa.delete(A).where(A.c.prediction_id.in_(prediction_ids))
        )

    def delete_of_pipelines(
        self, pipeline_ids: sa.Select[Any], chain_ids: sa.Select[Any] | None = None
    ) -> int:
        condition = T.c.pipeline_id.in_(pipeline_ids)
        if chain_ids is not None:
            condition = sa.or_(condition, T.c.chain_id.in_(chain_ids))
        return self.delete(sa.select(T.c.prediction_id).where(condition))

    # -- reads --------------------------------------------------------------------------
    def id_for_natural_key(self, key: str) -> str | None:
        """The id of the prediction stored under a `natural_key`, None if there is none."""
        query = sa.select(T.c.prediction_id).where(T.c.natural_key == key)
        found = self.session.execute(query).scalar_one_or_none()
        return None if found is None else str(found)

    def stored_natural_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of `keys` a stored prediction has (one query per 5,000 keys)."""
        found: set[str] = set()
        for start in range(0, len(keys), 5000):
            chunk = list(keys[start : start + 5000])
            query = sa.select(T.c.natural_key).where(T.c.natural_key.in_(chunk))
            found.update(str(k) for k in self.session.execute(query).scalars())
        return found

    def array_counts_by_dataset(self) -> dict[str, int]:
        """How many predictions of each dataset have arrays (one grouped query)."""
        query = (
            sa.select(T.c.dataset_name, sa.func.count())
            .select_from(T.join(A, A.c.prediction_id == T.c.prediction_id))
            .group_by(T.c.dataset_name)
        )
        return {name: int(n) for name, n in self.session.execute(query).all()}

    def arrays_state(self, prediction_id: str) -> tuple[bool, bool]:
        """(the prediction exists, it has arrays) in one query."""
        canonical = uuid_or_none(prediction_id)
        if canonical is None:
            return False, False
        query = (
            sa.select(T.c.prediction_id, A.c.prediction_id)
            .select_from(T.outerjoin(A, A.c.prediction_id == T.c.prediction_id))
            .where(T.c.prediction_id == canonical)
        )
        row = self.session.execute(query).first()
        return (False, False) if row is None else (True, row[1] is not None)

    def exists(self, prediction_id: str) -> bool:
        canonical = uuid_or_none(prediction_id)
        if canonical is None:
            return False
        query = sa.select(T.c.prediction_id).where(T.c.prediction_id == canonical)
        return self.session.execute(query).first() is not None

    def get(self, prediction_id: str, *, load_arrays: bool = False) -> dict[str, Any] | None:
        check_id("prediction_id", prediction_id)
        prediction_id = uuid_or_none(prediction_id)  # type: ignore[assignment]
        if prediction_id is None:
            return None
        row = self.session.execute(sa.select(T).where(T.c.prediction_id == prediction_id)).first()
        if row is None:
            return None
        result = dict(row._mapping)
        if load_arrays:
            arrays = read_arrays(self.session, [prediction_id]).get(prediction_id, {})
            for field in ARRAY_FIELDS:
                result[field] = arrays.get(field)
        return result

    def query(
        self,
        filters: Mapping[str, Any],
        *,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Predictions matching equality filters, oldest first with id tie-break (stable pages)."""
        cols = [T.c[name] for name in check_columns(columns)] if columns else list(T.columns)
        query = sa.select(*cols)
        query = apply_filters(query, filters, run_id=run_id)
        query = query.order_by(T.c.created_at, T.c.prediction_id).offset(max(int(offset), 0))
        if limit is not None:
            query = query.limit(int(limit))
        return rows_to_arrow(cols, self.session.execute(query).all())

    def top(
        self,
        n: int,
        *,
        metric: str = "val_score",
        ascending: bool = True,
        partition: str | None = "val",
        dataset_name: str | None = None,
        group_by: str | None = None,
        filters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> pa.Table:
        """The best `n` predictions by a score column (per group with `group_by`); NULLs last."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        score = T.c[check_columns([metric])[0]]
        if not isinstance(score.type, (sa.Double, sa.Integer)):
            raise ValueError(
                f"metric column {metric!r} is not numeric; use a score column such as 'val_score'"
            )
        flt = dict(filters or {})
        if partition is not None:
            flt["partition"] = check_choice("partition", partition, PARTITIONS)
        if dataset_name is not None:
            flt["dataset_name"] = dataset_name
        order = [
            sa.case((score.is_(None), 1), else_=0),
            score.asc() if ascending else score.desc(),
            T.c.prediction_id,
        ]
        if group_by is None:
            query = apply_filters(sa.select(*T.columns), flt, run_id=run_id)
            query = query.order_by(*order).limit(n)
            return rows_to_arrow(list(T.columns), self.session.execute(query).all())
        group = T.c[check_columns([group_by])[0]]
        rank = sa.func.row_number().over(partition_by=group, order_by=order).label("rank_in_group")
        inner = apply_filters(sa.select(*T.columns, rank), flt, run_id=run_id).subquery()
        query = (
            sa.select(*[inner.c[c.name] for c in T.columns], inner.c.rank_in_group)
            .where(inner.c.rank_in_group <= n)
            .order_by(inner.c[group.name], inner.c.rank_in_group)
        )
        table = rows_to_arrow(
            [*T.columns, sa.Column("rank_in_group", sa.Integer)],
            self.session.execute(query).all(),
        )
        return table

    def export_parquet(
        self,
        path: Path,
        filters: Mapping[str, Any],
        *,
        run_id: str | None = None,
        include_arrays: bool = False,
    ) -> None:
        """Write the predictions matching `filters` to a Parquet file at `path` (atomically);
        `include_arrays` adds y_true, y_pred (list<double>) and y_proba (list<list<double>>).
        An empty result is a valid file with the full schema."""
        filtered = apply_filters(sa.select(*T.columns), filters, run_id=run_id)

        def table() -> pa.Table:
            rows = self.query(filters, run_id=run_id)
            if not include_arrays:
                return rows
            arrays = self.arrays_for(rows.column("prediction_id").to_pylist())
            return prediction_export.with_arrays(rows, arrays)

        prediction_export.write_parquet(self.session, path, filtered, table, include_arrays)

    def arrays_for(self, prediction_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {}
        ids = list(prediction_ids)
        for start in range(0, len(ids), 5000):
            result.update(read_arrays(self.session, ids[start : start + 5000]))
        return result


def check_columns(names: Sequence[str]) -> list[str]:
    """Caller-given column names are checked against the table, never pasted into SQL."""
    bad = [n for n in names if n not in T.c]
    if bad:
        raise ValueError(
            f"unknown prediction column(s) {bad}; expected one of {list(PREDICTION_COLUMNS)}"
        )
    return list(names)


def apply_filters(
    query: sa.Select[Any], filters: Mapping[str, Any], *, run_id: str | None = None
) -> sa.Select[Any]:
    for name, value in filters.items():
        if name not in FILTERS:
            raise ValueError(
                f"unknown prediction filter {name!r}; expected one of {list(FILTERS)} or run_id"
            )
        if value is None:
            continue
        # Checked as the field itself is, so a bad value fails alike on every backend.
        if isinstance(value, (list, tuple, set)):
            query = query.where(T.c[name].in_([check_filter(name, v) for v in value]))
        else:
            query = query.where(T.c[name] == check_filter(name, value))
    if run_id is not None:
        query = query.where(
            T.c.pipeline_id.in_(sa.select(P.c.pipeline_id).where(P.c.run_id == run_id))
        )
    return query
