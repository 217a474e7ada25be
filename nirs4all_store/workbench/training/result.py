"""`RunResult`: what `run()` recorded, and the leaderboard printed from it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa

from nirs4all_store.store import WorkspaceStore
from nirs4all_store.workbench.progress import format_table
from nirs4all_store.workbench.training.metrics import SCORE_COLUMN, metric_ascending

__all__ = ["RunResult", "leaderboard_rows", "print_leaderboard"]


@dataclass
class RunResult:
    """What `run()` recorded: queries, export and prediction from the best chain.

    Holds an open store; `close()` it (or use `with`) when `run()` opened the workspace, to
    release the database file for other processes.
    """

    run_id: str
    store: WorkspaceStore
    metric: str
    status: str = "completed"
    pipeline_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    owns_store: bool = False

    @property
    def ascending(self) -> bool:
        return metric_ascending(self.metric)

    def top(
        self,
        n: int = 5,
        *,
        partition: str = "val",
        fold_id: str | None = "avg",
        dataset_name: str | None = None,
        ascending: bool | None = None,
    ) -> pa.Table:
        """The run's best predictions on `partition` (default: cross-validated val, fold avg)."""
        if partition not in SCORE_COLUMN:
            raise ValueError(f"partition must be one of {list(SCORE_COLUMN)}, got {partition!r}")
        filters: dict[str, Any] = {} if fold_id is None else {"fold_id": fold_id}
        return self.store.top_predictions(
            n,
            metric=SCORE_COLUMN[partition],
            ascending=self.ascending if ascending is None else ascending,
            partition=partition,
            dataset_name=dataset_name,
            run_id=self.run_id,
            **filters,
        )

    @property
    def best(self) -> dict[str, Any]:
        """The best cross-validated (fold avg, val) prediction of the run, as a dict."""
        rows = self.top(1).to_pylist()
        if not rows:
            raise LookupError(f"run {self.run_id} has no completed pipeline: no best chain")
        return rows[0]

    def _chain_of(self, prediction_id: str | None) -> str:
        if prediction_id is None:
            return str(self.best["chain_id"])
        row = self.store.get_prediction(prediction_id)
        if row is None:
            raise KeyError(f"unknown prediction_id {prediction_id!r}")
        if row.get("chain_id") is None:
            raise LookupError(f"prediction {prediction_id} has no chain to export")
        return str(row["chain_id"])

    def export(self, path: str | os.PathLike[str], prediction_id: str | None = None) -> Path:
        """Write the best chain's `.n4a` bundle (or the chain of `prediction_id`) to `path`."""
        return Path(self.store.export_chain(self._chain_of(prediction_id), path))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the best chain on new spectra (replayed from the stored artifacts)."""
        return np.asarray(self.store.replay_chain(self._chain_of(None), X))

    def close(self) -> None:
        if self.owns_store:
            self.store.close()

    def __enter__(self) -> RunResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RunResult(run_id={self.run_id!r}, status={self.status!r}, metric={self.metric!r}, "
            f"pipelines={len(self.pipeline_ids)}, failed={len(self.failed)})"
        )


def leaderboard_rows(table: pa.Table, metric: str) -> list[dict[str, Any]]:
    """Leaderboard rows (rank, dataset, preprocessing, model, scores, ids) from a top() table."""
    rows = []
    for rank, r in enumerate(table.to_pylist(), start=1):
        score_col = next(
            (c for c in ("val_score", "test_score", "train_score") if r.get(c) is not None),
            "val_score",
        )
        rows.append(
            {
                "rank": rank,
                "dataset": r["dataset_name"],
                "preprocessing": r.get("preprocessings") or "-",
                "model": r["model_name"],
                f"{r['partition']} {metric}": r.get(score_col),
                "chain_id": (r.get("chain_id") or "")[:8],
                "prediction_id": (r.get("prediction_id") or "")[:8],
            }
        )
    return rows


def print_leaderboard(result: RunResult, n: int = 10, stream: TextIO | None = None) -> None:
    """Print the run's cross-validated leaderboard; with a test set, the test score of the fold
    ensemble (mean of the fold models, fold `avg`) and of the refit model (`fold_final`, the
    one bundles export) side by side."""
    out = stream or sys.stdout
    table = result.top(n)
    rows = leaderboard_rows(table, result.metric)
    if rows:
        full = table.to_pylist()
        for fold_id, column in (("avg", "fold-ensemble"), ("fold_final", "refit")):
            tests = result.store.query_predictions(
                run_id=result.run_id, fold_id=fold_id, partition="test"
            ).to_pylist()
            by_chain = {t["chain_id"]: t["test_score"] for t in tests}
            if by_chain:
                for row, r in zip(rows, full, strict=True):
                    row[f"test {result.metric} ({column})"] = by_chain.get(r["chain_id"])
        for row in rows:  # ids last
            row["chain_id"] = row.pop("chain_id")
            row["prediction_id"] = row.pop("prediction_id")
    order = "lower is better" if result.ascending else "higher is better"
    out.write(
        f"\nRun {result.run_id}: {len(result.pipeline_ids)} pipeline(s), "
        f"{len(result.failed)} failed; "
        f"cross-validated {result.metric} ({order})\n"
    )
    out.write((format_table(rows) if rows else "(no completed pipeline)") + "\n")
    out.flush()
