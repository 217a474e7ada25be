"""How `run()` records fitted pipelines: in groups, one bulk call per table.

Measured (benchmarks/bench_run.py, 2 cores, 20 pipelines x 5 folds on 200 x 1000 spectra):
one transaction per pipeline cost ~35 ms of store work per pipeline (about 7 durable artifact
files, ~10 statements and a commit), as much as fitting it, and a writer thread did not hide it
(it shares the GIL and the cores with fitting). A group of pipelines is recorded with the same
public calls a user would make, but each call takes the whole group: one `save_artifacts`, one
`save_chains`, one `save_predictions`, one `save_logs`, in ONE transaction.

A group is committed when it is `commit_every` seconds old, when it holds `MAX_GROUP`
pipelines, and when the run ends (or is interrupted). A crash loses at most the group held in
memory (fitted, not yet committed), never committed data. A group that fails to commit is
recorded again one pipeline per transaction, so a pipeline that cannot be recorded (say, an
estimator that cannot be pickled) fails alone, like a pipeline that cannot be fitted.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nirs4all_store.store import WorkspaceStore

#: Fitted steps are stored as plain pickles: the C pickler serialises a PLS model ~6x faster
#: than joblib's Python one (0.1 vs 0.6 ms), and `joblib.load` reads them too.
ARTIFACT_FORMAT = "pickle"

#: Pipelines held before a commit whatever their age (bounds the memory of fitted models).
MAX_GROUP = 64

#: Default age (seconds) of the oldest uncommitted pipeline that triggers a commit.
DEFAULT_COMMIT_EVERY = 10.0


def traceback_excerpt(limit: int = 2000) -> str:
    """The end of the current exception's traceback (what a failed pipeline row keeps)."""
    text = traceback.format_exc()
    return text if len(text) <= limit else "..." + text[-limit:]


def check_commit_every(value: Any) -> float:
    """Seconds, >= 0 (0: commit every pipeline on its own)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"commit_every must be a number of seconds, got {value!r}")
    if not value >= 0:
        raise ValueError(f"commit_every must be >= 0 seconds, got {value!r}")
    return float(value)


@dataclass
class FittedPipeline:
    """Everything one (pipeline, dataset) produced, until it is committed.

    `objects` are (key, fitted step, operator class, artifact type): keys ``"0"``, ``"1"``...
    are the shared transformers (their index in the chain), keys ``fold_*`` the fold and refit
    models. `chain` holds the `save_chain` arguments except the pipeline and artifact maps.
    A pipeline whose fit raised has `error` (a traceback excerpt) and nothing else.
    """

    pipeline_id: str
    label: str
    begin: dict[str, Any]  # the rest of its `save_pipelines` record: run_id, name, ...
    error: str | None = None
    error_summary: str = ""
    objects: list[tuple[str, Any, str, str]] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    completion: dict[str, Any] = field(default_factory=dict)  # `complete_pipeline` kwargs

    def pipeline_record(self, **fields: Any) -> dict[str, Any]:
        """Its `save_pipelines` record, with `fields` (status, scores or error)."""
        return {**self.begin, "pipeline_id": self.pipeline_id, **fields}

    def chain_record(self, artifact_ids: dict[str, str]) -> dict[str, Any]:
        """The `save_chains` record, given the artifact id saved for each object key."""
        shared = {k: v for k, v in artifact_ids.items() if not k.startswith("fold_")}
        folds = {k: v for k, v in artifact_ids.items() if k.startswith("fold_")}
        steps = [
            {**step, "artifact_id": shared.get(str(i))}
            for i, step in enumerate(self.chain.get("steps", []))
        ]
        return {
            **self.chain,
            "pipeline_id": self.pipeline_id,
            "steps": steps,
            "fold_artifacts": folds,
            "shared_artifacts": shared,
        }


class Recorder:
    """Collects fitted pipelines and commits them in groups (see the module docstring)."""

    def __init__(
        self,
        store: WorkspaceStore,
        *,
        commit_every: float = DEFAULT_COMMIT_EVERY,
        on_failed: Callable[[FittedPipeline, str], None] = lambda item, why: None,
    ) -> None:
        self.store = store
        self.commit_every = check_commit_every(commit_every)
        self.on_failed = on_failed
        self.pending: list[FittedPipeline] = []
        self.oldest = 0.0
        self.commits = 0

    def add(self, item: FittedPipeline) -> None:
        """Hold a pipeline; commit the group if it is due."""
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append(item)
        if len(self.pending) >= MAX_GROUP or time.monotonic() - self.oldest >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit every held pipeline (a failing group is retried pipeline by pipeline)."""
        items, self.pending = self.pending, []
        if not items:
            return
        try:
            self._commit(items)
        except Exception as exc:
            if len(items) == 1:
                self._record_failure(items[0], exc)
                return
            for item in items:
                try:
                    self._commit([item])
                except Exception as single:
                    self._record_failure(item, single)

    def _commit(self, items: list[FittedPipeline]) -> None:
        store = self.store
        with store.transaction():
            fitted = [item for item in items if item.error is None]
            store.save_pipelines(
                [
                    item.pipeline_record(status="completed", **item.completion)
                    if item.error is None
                    else item.pipeline_record(status="failed", error=item.error)
                    for item in items
                ]
            )
            if fitted:
                ids = iter(
                    store.save_artifacts(
                        [
                            (obj, operator_class, kind, ARTIFACT_FORMAT)
                            for item in fitted
                            for _, obj, operator_class, kind in item.objects
                        ]
                    )
                )
                chain_ids = store.save_chains(
                    [
                        item.chain_record({key: next(ids) for key, *_ in item.objects})
                        for item in fitted
                    ]
                )
                store.save_predictions(
                    [
                        {**record, "pipeline_id": item.pipeline_id, "chain_id": chain_id}
                        for item, chain_id in zip(fitted, chain_ids, strict=True)
                        for record in item.predictions
                    ]
                )
                store.save_logs(
                    [
                        {**entry, "pipeline_id": item.pipeline_id}
                        for item in fitted
                        for entry in item.logs
                    ]
                )
        self.commits += 1
        for item in items:
            if item.error is not None:
                self.on_failed(item, item.error_summary)

    def _record_failure(self, item: FittedPipeline, exc: Exception) -> None:
        """The pipeline could not be recorded: keep its row, failed, with the reason."""
        excerpt = traceback_excerpt()
        self.store.save_pipelines([item.pipeline_record(status="failed", error=excerpt)])
        self.commits += 1
        self.on_failed(item, f"{type(exc).__name__}: {exc}")
