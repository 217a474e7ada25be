"""Write-behind: row calls validated at once, queued, and written through the bulk paths.

Measured on the seed workload (issue 16: 2 runs x 25 pipelines, 2,154 row calls), one
statement per call costs ~1-1.5 ms of DuckDB execution each, and a single-row Arrow insert
~4 ms: inside one transaction per pipeline the row API took 14.8 s where one Arrow insert
per table takes 0.06 s. So inside `store.transaction()` (and in `write_behind=True` mode)
the row calls do their checks at once (types, choices, parents known in the queue or
looked up once, duplicate natural keys) and return their ids, and a `WriteQueue` holds the
rows until a flush: before the transaction commits, before any read or other write made
through the store, or (write-behind) when the background flusher runs. A flush is a few
bulk statements, in parent-to-child order.

What only the database can tell (a prediction whose natural key is already stored by
another transaction; a parent deleted by another process since it was checked) surfaces
at the flush, as the same typed error the direct call would raise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from nirs4all_store.errors import ConstraintError
from nirs4all_store.repositories import (
    ArtifactRepository,
    ChainRepository,
    LogRepository,
    PipelineRepository,
    PredictionRepository,
    RunRepository,
)
from nirs4all_store.repositories.artifacts import artifact_id_for
from nirs4all_store.repositories.base import insert_rows, missing_ids, require_ids
from nirs4all_store.repositories.predictions import natural_key
from nirs4all_store.repositories.status import StatusRepository

T = TypeVar("T")
#: Runs `fn(session)` in a session: the open transaction's, or a short read unit of work.
Lookup = Callable[[Callable[[Session], T]], T]

PIPELINES = PipelineRepository.table.c.pipeline_id
CHAINS = ChainRepository.table.c.chain_id
RUNS = RunRepository.table.c.run_id


class Known:
    """Ids known to exist (queued, inserted or looked up) and pipelines created here: their
    predictions can only collide with queued ones. Kept across flushes of one queue."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = {"runs": set(), "pipelines": set(), "chains": set()}
        self.created_pipelines: set[str] = set()
        self.artifacts: set[str] = set()
        #: Natural keys of the predictions queued (or flushed) for created pipelines.
        self.keys: set[str] = set()
        #: The id of each (sha256, format) saved or looked up.
        self.artifact_ids: dict[tuple[str, str], str] = {}
        #: Whether some artifact row has an id not derived from its bytes (None: not asked).
        self.foreign_artifact_ids: bool | None = None

    def forget(self) -> None:
        """After a delete: anything may be gone."""
        for ids in self.ids.values():
            ids.clear()
        self.created_pipelines.clear()
        self.artifacts.clear()
        self.keys.clear()
        self.artifact_ids.clear()
        self.foreign_artifact_ids = None


class WriteQueue:
    """Validated rows waiting for a flush (one transaction's, or the write-behind batch)."""

    def __init__(self, known: Known | None = None) -> None:
        self.known = known or Known()
        self.vault: Any = None  # the ArtifactVault that writes queued artifacts
        self.artifacts: dict[tuple[str, str], Any] = {}  # serialised objects by (sha, fmt)
        self.pipelines: list[dict[str, Any]] = []
        self.chains: list[dict[str, Any]] = []
        self.refs: Counter[str] = Counter()
        self.predictions: dict[str, dict[str, Any]] = {}
        self.arrays: dict[str, dict[str, Any]] = {}  # of queued predictions
        self.replaced: dict[str, dict[str, Any]] = {}  # new arrays of stored predictions
        self.logs: list[dict[str, Any]] = []
        self.completions: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return (
            len(self.artifacts)
            + len(self.pipelines)
            + len(self.chains)
            + len(self.predictions)
            + len(self.arrays)
            + len(self.replaced)
            + len(self.logs)
            + len(self.completions)
        )

    def detach(self) -> WriteQueue:
        """This queue's rows as a new batch (sharing `known`); this queue starts empty."""
        batch = WriteQueue(self.known)
        for name in ("pipelines", "chains", "logs"):
            setattr(batch, name, getattr(self, name))
            setattr(self, name, [])
        batch.vault = self.vault
        for name in ("artifacts", "predictions", "arrays", "replaced", "completions"):
            setattr(batch, name, getattr(self, name))
            setattr(self, name, {})
        batch.refs, self.refs = self.refs, Counter()
        return batch

    # -- checks at call time ----------------------------------------------------------------
    def _require(self, lookup: Lookup[Any], table: str, column: Any, ids: set[str]) -> None:
        unknown = ids - self.known.ids[table]
        if unknown:
            lookup(lambda s: require_ids(s, column, unknown))
            self.known.ids[table].update(unknown)

    # -- queued calls -----------------------------------------------------------------------
    def add_artifacts(self, vault: Any, prepared: list[Any], lookup: Lookup[Any]) -> list[str]:
        """Serialised objects (`ArtifactVault.prepare`): ids now, files and rows at flush.
        The id of bytes already stored is the stored row's (one look-up per new hash)."""
        keys = [(item[4], item[1]) for item in prepared]
        ids = self.known.artifact_ids
        unknown = [key for key in dict.fromkeys(keys) if key not in ids]
        if unknown and self.known.foreign_artifact_ids is None:
            self.known.foreign_artifact_ids = lookup(
                lambda s: ArtifactRepository(s).has_foreign_ids()
            )
        if unknown and not self.known.foreign_artifact_ids:
            # Every stored id is derived from its bytes (artifact_id_for): no look-up needed
            # (a look-up is one statement, ~1-4 ms on DuckDB, per saved object).
            ids.update((key, artifact_id_for(*key)) for key in unknown)
        elif unknown:
            found = lookup(lambda s: ArtifactRepository(s).find_by_hashes(unknown))
            for key in unknown:
                ids[key] = found[key]["artifact_id"] if key in found else artifact_id_for(*key)
        self.vault = vault
        for key, item in zip(keys, prepared, strict=True):
            self.artifacts.setdefault(key, item)
        result = [ids[key] for key in keys]
        self.known.artifacts.update(result)
        return result

    def add_pipelines(self, rows: list[dict[str, Any]], lookup: Lookup[Any]) -> list[str]:
        self._require(lookup, "runs", RUNS, {row["run_id"] for row in rows})
        ids = [row["pipeline_id"] for row in rows]
        self.pipelines.extend(rows)
        self.known.ids["pipelines"].update(ids)
        self.known.created_pipelines.update(ids)
        return ids

    def add_completion(self, pipeline_id: str, values: dict[str, Any], lookup: Lookup[Any]) -> None:
        self._require(lookup, "pipelines", PIPELINES, {pipeline_id})
        self.completions[pipeline_id] = values

    def add_chains(
        self, rows: list[tuple[dict[str, Any], set[str]]], lookup: Lookup[Any]
    ) -> list[str]:
        self._require(lookup, "pipelines", PIPELINES, {row["pipeline_id"] for row, _ in rows})
        refs = set().union(*(r for _, r in rows)) - self.known.artifacts
        if refs:
            missing = lookup(lambda s: ArtifactRepository(s).missing(refs))
            if missing:
                owners = sorted({row["pipeline_id"] for row, r in rows if r & set(missing)})
                raise KeyError(
                    f"unknown artifact id(s) {sorted(missing)} in chain(s) of pipeline(s) {owners}"
                )
            self.known.artifacts.update(refs)
        self.chains.extend(row for row, _ in rows)
        self.refs.update(ref for _, r in rows for ref in r)
        ids = [row["chain_id"] for row, _ in rows]
        self.known.ids["chains"].update(ids)
        return ids

    def add_predictions(
        self,
        rows: list[dict[str, Any]],
        arrays: list[dict[str, Any]],
        lookup: Lookup[Any],
    ) -> list[str]:
        self._require(lookup, "pipelines", PIPELINES, {r["pipeline_id"] for r in rows})
        chains = {r["chain_id"] for r in rows if r["chain_id"] is not None}
        self._require(lookup, "chains", CHAINS, chains)
        keys = self._new_keys(rows, lookup)
        for row in rows:
            self.predictions[row["prediction_id"]] = row
        self.known.keys.update(keys)
        for item in arrays:
            self.arrays[item["prediction_id"]] = item
        return [row["prediction_id"] for row in rows]

    def _new_keys(self, rows: list[dict[str, Any]], lookup: Lookup[Any]) -> list[str]:
        """The rows' natural keys, refused when one repeats a queued or stored prediction.
        Only pipelines created elsewhere can have stored predictions: their keys are looked
        up in one query per call (chunked), not one per row."""
        keys = [
            natural_key(
                r["pipeline_id"], r["chain_id"], r["fold_id"], r["partition"],
                r["model_name"], r["branch_id"],
            )
            for r in rows
        ]  # fmt: skip
        if len(set(keys)) != len(keys):
            raise ConstraintError(
                "save_predictions conflicts with itself: two records share "
                "(pipeline, chain, fold, partition, model, branch)"
            )
        created = self.known.created_pipelines
        outside = [k for k, r in zip(keys, rows, strict=True) if r["pipeline_id"] not in created]
        stored: set[str] = set()
        if outside:
            stored = lookup(lambda s: PredictionRepository(s).stored_natural_keys(outside))
        for key, row in zip(keys, rows, strict=True):
            if key in self.known.keys or key in stored:
                raise ConstraintError(
                    f"save_predictions conflicts with stored data: a prediction of pipeline "
                    f"{row['pipeline_id']!r} already has fold {row['fold_id']!r}, partition "
                    f"{row['partition']!r}, model {row['model_name']!r} (chain "
                    f"{row['chain_id']!r}, branch {row['branch_id']!r})"
                )
        return keys

    def add_arrays(self, arrays: dict[str, Any], lookup: Lookup[Any]) -> None:
        prediction_id = arrays["prediction_id"]
        if prediction_id in self.predictions:
            self.arrays[prediction_id] = arrays
            return
        if not lookup(lambda s: PredictionRepository(s).exists(prediction_id)):
            raise KeyError(f"unknown prediction_id {prediction_id!r}")
        self.replaced[prediction_id] = arrays

    def add_logs(self, rows: list[dict[str, Any]], lookup: Lookup[Any]) -> list[str]:
        self._require(lookup, "pipelines", PIPELINES, {row["pipeline_id"] for row in rows})
        self.logs.extend(rows)
        return [row["log_id"] for row in rows]

    # -- the flush --------------------------------------------------------------------------
    def flush(self, s: Session) -> None:
        """Write every queued row in `s`'s transaction, parents first; then empty the queue.

        Parents are checked again in bulk (one query per table): another process may have
        deleted one since the call. The queue is emptied only once every statement ran, so a
        unit of work that retries this flush writes the same rows again."""
        if not len(self):
            return
        pipelines = PipelineRepository(s)
        created = {row["pipeline_id"] for row in self.pipelines}
        require_ids(s, RUNS, {row["run_id"] for row in self.pipelines})
        pipelines.insert_many(self.pipelines)
        if self.artifacts:  # files first, then rows (the caller holds the artifact lock)
            self._flush_artifacts(s)
        referenced = {r["pipeline_id"] for r in (*self.chains, *self.logs)}
        referenced |= {r["pipeline_id"] for r in self.predictions.values()}
        referenced |= set(self.completions)
        require_ids(s, PIPELINES, referenced - created)
        self._flush_chains(s)
        self._flush_predictions(s)
        if self.logs:
            insert_rows(s, LogRepository.table, self.logs)
        for pipeline_id, values in self.completions.items():
            pipelines.apply_completion(pipeline_id, values)
        touched = sorted(created | referenced)
        for start in range(0, len(touched), 1000):  # bounded IN lists (SQLite's bind limit)
            StatusRepository(s).heartbeat_of_pipelines(touched[start : start + 1000])
        self.detach()  # written: drop the rows, keep what is known

    def _flush_artifacts(self, s: Session) -> None:
        prepared = list(self.artifacts.values())
        ids = self.vault.record(s, prepared, self.vault.put(prepared))
        promised = [self.known.artifact_ids[(item[4], item[1])] for item in prepared]
        if ids != promised:  # another process registered these bytes under its own id
            clash = sorted({p for p, i in zip(promised, ids, strict=True) if p != i})
            raise ConstraintError(
                f"artifact id(s) {clash} were registered under other ids by another writer "
                "while this transaction was open; run it again"
            )

    def _flush_chains(self, s: Session) -> None:
        if not self.chains:
            return
        ChainRepository(s).insert_many(self.chains)
        artifacts = ArtifactRepository(s)
        if artifacts.adjust(self.refs) != len(self.refs):  # an artifact went since the call
            raise KeyError(f"unknown artifact id(s) {artifacts.missing(self.refs)} in chains")

    def _flush_predictions(self, s: Session) -> None:
        repo = PredictionRepository(s)
        chains = {r["chain_id"] for r in self.predictions.values() if r["chain_id"] is not None}
        missing = missing_ids(s, CHAINS, chains)
        if missing:
            raise KeyError(f"unknown chain_id(s) {missing}")
        if self.predictions or self.arrays:
            repo.insert_many(list(self.predictions.values()), list(self.arrays.values()))
        if self.replaced:
            repo.delete_arrays(list(self.replaced))
            repo.insert_many([], list(self.replaced.values()))
