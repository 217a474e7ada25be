"""Random sequences of artifact saves, chains, deletes, gc and reopen keep reference counts
exact (hypothesis RuleBasedStateMachine against a plain Python model of the workspace).

After every step: each artifact's ref_count equals the references recomputed from the model's
live chains, the set of artifact rows is the one the model expects, every artifact a live chain
references loads from an existing file, and `verify()` reports nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from nirs4all_store import WorkspaceStore
from nirs4all_store.models import TABLES

N_OBJECTS = 6  # few distinct objects: saves collide (deduplication) often
SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def make_object(k: int) -> Any:
    """Small artifacts of different kinds; object k always serialises to the same bytes."""
    if k % 2:
        return np.arange(float(k + 1))
    return {"kind": "params", "k": k, "coef": [0.5 * k, 1.0]}


def empty_database(url: str) -> None:
    """Delete every row (children first): one PostgreSQL database serves all examples."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for model in reversed(TABLES):
                conn.execute(sa.delete(model.__table__))
    finally:
        engine.dispose()


_TEMPLATE: list[Path] = []


def empty_duckdb_workspace() -> Path:
    """A freshly migrated, empty store.duckdb (made once per test session)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="n4a-stateful-template-"))
        WorkspaceStore(folder).close()
        _TEMPLATE.append(folder / "store.duckdb")
    return _TEMPLATE[0]


class RefCountMachine(RuleBasedStateMachine):
    database_url: str | None = None  # set per backend by the test below

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="n4a-stateful-"))
        url = self.database_url
        if url is not None and url.startswith("sqlite"):
            url = f"sqlite:///{self.tmp / 'store.sqlite'}"
        elif url is not None:
            empty_database(url)
        self.url = url
        if url is None:  # copy a migrated empty workspace: migrating each example is slow
            (self.tmp / "ws").mkdir()
            shutil.copyfile(empty_duckdb_workspace(), self.tmp / "ws" / "store.duckdb")
        self.store = self._open()
        # The model.
        self.ids: dict[int, str] = {}  # object index -> artifact id (learned on first save)
        self.live: set[str] = set()  # artifact rows that must exist
        self.protected: set[str] = set()  # saved, not referenced since: the grace spares them
        self.runs: dict[str, list[str]] = {}  # run -> pipelines
        self.chains: dict[str, tuple[str, set[str]]] = {}  # chain -> (pipeline, refs)
        self.predictions: dict[str, tuple[str, str | None]] = {}  # prediction -> (pipe, chain)
        self.saved_predictions = 0  # fold ids never repeat: each prediction is a new one

    def _open(self) -> WorkspaceStore:
        return WorkspaceStore(self.tmp / "ws", url=self.url)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- model helpers ---------------------------------------------------------------------
    def expected_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for _, refs in self.chains.values():
            counts.update(refs)
        return counts

    def pipelines(self) -> list[str]:
        # Insertion order, not sorted: ids are random UUIDs, and hypothesis needs the same
        # draws to pick the same objects when it replays an example.
        return [p for pipes in self.runs.values() for p in pipes]

    def _drop_chains(self, pipelines: set[str]) -> set[str]:
        """Forget the chains (and their predictions) of `pipelines`; returns released ids."""
        released: set[str] = set()
        for chain_id in [c for c, (p, _) in self.chains.items() if p in pipelines]:
            released |= self.chains.pop(chain_id)[1]
            for pred in [k for k, (_, c) in self.predictions.items() if c == chain_id]:
                del self.predictions[pred]
        for pred in [k for k, (p, _) in self.predictions.items() if p in pipelines]:
            del self.predictions[pred]
        return released

    # -- rules -----------------------------------------------------------------------------
    @initialize(ks=st.lists(st.integers(0, N_OBJECTS - 1), min_size=1, max_size=3))
    def start(self, ks: list[int]) -> None:
        """Some artifacts and two runs up front, so chains are possible from the first step."""
        for k in ks:
            self.save_artifact(k, "joblib")
        self.begin_run(2)
        self.begin_run(1)

    @rule(k=st.integers(0, N_OBJECTS - 1), fmt=st.sampled_from(["joblib", "joblib", "pickle"]))
    def save_artifact(self, k: int, fmt: str) -> None:
        artifact_id = self.store.save_artifact(make_object(k), f"Op{k}", "transformer", fmt)
        key = k * 2 + (fmt == "pickle")
        assert self.ids.setdefault(key, artifact_id) == artifact_id  # deterministic id
        self.protected.add(artifact_id)  # in flight until a chain references it again
        self.live.add(artifact_id)

    @rule(n_pipelines=st.integers(1, 2))
    def begin_run(self, n_pipelines: int) -> None:
        run_id = self.store.begin_run(f"run{len(self.runs)}")
        self.runs[run_id] = [
            self.store.begin_pipeline(run_id, f"p{i}", dataset_name="ds")
            for i in range(n_pipelines)
        ]

    @precondition(lambda self: self.runs and self.live)
    @rule(data=st.data(), unknown=st.sampled_from([False, False, False, True]))
    def save_chain(self, data: st.DataObject, unknown: bool) -> None:
        pipeline_id = data.draw(st.sampled_from(self.pipelines()))
        pool = sorted(self.live) + sorted(set(self.ids.values()) - self.live)  # deleted ids too
        ids = st.sampled_from(pool)
        one_or_many = st.one_of(ids, st.lists(ids, min_size=1, max_size=3))
        fold = data.draw(st.dictionaries(st.sampled_from("0123"), one_or_many, max_size=3))
        shared = data.draw(
            st.dictionaries(st.sampled_from(["scaler", "pca"]), one_or_many, max_size=2)
        )
        if unknown:
            fold["9"] = "no-such-artifact"
        refs: set[str] = set()
        for value in [*fold.values(), *shared.values()]:
            refs.update([value] if isinstance(value, str) else value)
        before = self.store.get_chains_for_pipeline(pipeline_id).num_rows
        if refs - self.live:
            with pytest.raises(KeyError):
                self.store.save_chain(
                    pipeline_id, [], 0, "M", fold_artifacts=fold, shared_artifacts=shared
                )
            assert self.store.get_chains_for_pipeline(pipeline_id).num_rows == before
            return
        chain_id = self.store.save_chain(
            pipeline_id, [{"i": 0}], 0, "M", fold_artifacts=fold, shared_artifacts=shared
        )
        self.chains[chain_id] = (pipeline_id, refs)
        self.protected -= refs

    @precondition(lambda self: self.runs and self.live)
    @rule(data=st.data())
    def save_another_chain(self, data: st.DataObject) -> None:
        """Chains are what the counts are about: a second rule makes them twice as likely."""
        self.save_chain(data, False)

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), with_chain=st.booleans())
    def save_prediction(self, data: st.DataObject, with_chain: bool) -> None:
        pipeline_id = data.draw(st.sampled_from(self.pipelines()))
        mine = [c for c, (p, _) in self.chains.items() if p == pipeline_id]
        chain_id = data.draw(st.sampled_from(mine)) if with_chain and mine else None
        y = np.arange(5.0)
        (pred,) = self.store.save_predictions(
            [
                {
                    "pipeline_id": pipeline_id,
                    "chain_id": chain_id,
                    "dataset_name": "ds",
                    "model_name": "m",
                    "model_class": "M",
                    "fold_id": str(self.saved_predictions),
                    "partition": "val",
                    "metric": "rmse",
                    "task_type": "regression",
                    "y_true": y,
                    "y_pred": y,
                }
            ]
        )
        self.predictions[pred] = (pipeline_id, chain_id)
        self.saved_predictions += 1

    @precondition(lambda self: self.predictions)
    @rule(data=st.data())
    def delete_prediction(self, data: st.DataObject) -> None:
        pred = data.draw(st.sampled_from(list(self.predictions)))
        assert self.store.delete_prediction(pred) is True
        del self.predictions[pred]
        assert self.store.delete_prediction(pred) is False

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def fail_pipeline(self, data: st.DataObject) -> None:
        pipeline_id = data.draw(st.sampled_from(self.pipelines()))
        self.store.fail_pipeline(pipeline_id, "boom")
        self._drop_chains({pipeline_id})
        row = self.store.get_pipeline(pipeline_id)
        assert row is not None and row["status"] == "failed"

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), delete_artifacts=st.booleans())
    def delete_run(self, data: st.DataObject, delete_artifacts: bool) -> None:
        run_id = data.draw(st.sampled_from(list(self.runs)))
        pipelines = set(self.runs.pop(run_id))
        before = self.expected_counts()
        n_chains = sum(1 for p, _ in self.chains.values() if p in pipelines)
        n_preds = sum(1 for p, c in self.predictions.values() if p in pipelines)
        released = self._drop_chains(pipelines)
        after = self.expected_counts()
        gone = (
            {a for a in released if after[a] == 0 and before[a] > 0} - self.protected
            if delete_artifacts
            else set()
        )
        deleted = self.store.delete_run(run_id, delete_artifacts=delete_artifacts)
        # run + pipelines + chains + predictions with their arrays rows (+ artifacts), no logs
        assert deleted >= 1 + len(pipelines) + n_chains + 2 * n_preds + len(gone)
        self.live -= gone
        self.protected -= gone

    @rule(grace=st.sampled_from([0, 3600]), dry_run=st.booleans())
    def gc_artifacts(self, grace: int, dry_run: bool) -> None:
        counts = self.expected_counts()
        spared = self.protected if grace else set()
        doomed = {a for a in self.live if counts[a] == 0 and a not in spared}
        result = self.store.gc_artifacts(grace_seconds=grace, dry_run=dry_run)
        if dry_run:
            assert isinstance(result, list)
            assert {r["artifact_id"] for r in result} == doomed
            return
        assert result == len(doomed)
        self.live -= doomed
        self.protected -= doomed

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def counts_files_and_verify(self) -> None:
        counts = self.expected_counts()
        rows = {r["artifact_id"]: r for r in self.store.list_artifacts().to_pylist()}
        assert set(rows) == self.live
        for artifact_id, row in rows.items():
            assert row["ref_count"] == counts[artifact_id], artifact_id
            assert self.store.get_artifact_path(artifact_id).is_file()
        for artifact_id in counts:
            self.store.load_artifact(artifact_id)
        report = self.store.verify()
        assert report.ok, report.problems()
        assert report.orphan_files == []


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "postgresql"])
def test_reference_counts_stay_exact(backend: str, request: pytest.FixtureRequest) -> None:
    from conftest import BACKENDS, fresh_pg_database

    if backend not in BACKENDS:
        pytest.skip(f"{backend} not in NIRS4ALL_TEST_BACKENDS")
    url: str | None = None
    if backend == "sqlite":
        url = "sqlite://"  # placeholder: each example gets a file in its own folder
    elif backend == "postgresql":
        url = fresh_pg_database(
            request.getfixturevalue("pg_url"), request.getfixturevalue("pg_template")
        )

    machine = type(f"RefCountMachine_{backend}", (RefCountMachine,), {"database_url": url})
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=SETTINGS)
