"""Pure shaping of store rows into what the pages show (no store access here).

Rows are the dicts of `pyarrow.Table.to_pylist()` (JSON columns as JSON text) or of the
`get_*` calls (JSON decoded); `decode` accepts both.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "SCORE_COLUMN",
    "artifact_roles",
    "best_table",
    "board_row",
    "chain_scores",
    "decode",
    "display_status",
    "facets_from_config",
    "family_of",
    "family_trend",
    "fmt_bytes",
    "fmt_ms",
    "fmt_score",
    "fmt_time",
    "fold_key",
    "metric_ascending",
    "metrics_of",
    "run_direction",
    "run_duration_ms",
    "run_row",
    "score_grid",
    "score_of",
    "short",
    "sort_rows",
]

SCORE_COLUMN = {"train": "train_score", "val": "val_score", "test": "test_score"}
#: Direction of the metrics `run()` records (the store keeps scores as computed).
_ASCENDING = {"rmse": True, "mae": True, "mse": True, "r2": False}
_ASCENDING |= {"accuracy": False, "balanced_accuracy": False}
_FOLD = re.compile(r"^fold_(\d+)$")


def metric_ascending(metric: str) -> bool:
    """True when lower is better (rmse, mae); False for r2 and the accuracies."""
    return _ASCENDING.get(metric, True)


def decode(value: Any) -> Any:
    """A JSON column's value: text from Arrow tables, already decoded from `get_*`."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def display_status(run: Mapping[str, Any]) -> str:
    """running / completed / failed / interrupted.

    The store reports 'interrupted' for a run whose process died (no heartbeat); `run()`
    records a run stopped by an exception (Ctrl-C) as failed with the error
    "interrupted: ..." (training/session.py `_abort_run`), which is read back here.
    """
    status = str(run.get("status") or "")
    if status == "failed" and str(run.get("error") or "").startswith("interrupted"):
        return "interrupted"
    return status


def short(value: Any) -> str:
    return str(value or "")[:8]


def score_of(row: Mapping[str, Any], metric: str) -> float | None:
    """The `metric` score of a prediction row on its own partition, None when not stored."""
    scores = decode(row.get("scores")) or {}
    part = scores.get(row.get("partition")) if isinstance(scores, dict) else None
    value = part.get(metric) if isinstance(part, dict) else None
    if value is None and row.get("metric") == metric:
        value = row.get(SCORE_COLUMN.get(str(row.get("partition")), "val_score"))
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def metrics_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Metric names stored in the rows' `scores` (the run's metric first when present)."""
    found: dict[str, None] = {}
    for row in rows:
        if row.get("metric"):
            found.setdefault(str(row["metric"]), None)
        scores = decode(row.get("scores")) or {}
        if isinstance(scores, dict):
            for part in scores.values():
                if isinstance(part, dict):
                    for name in part:
                        found.setdefault(str(name), None)
    return list(found)


def fold_key(fold_id: Any) -> tuple[int, int, str]:
    """fold_0 < fold_1 < ... < fold_10 < avg < fold_final < anything else."""
    text = str(fold_id)
    match = _FOLD.match(text)
    if match:
        return (0, int(match.group(1)), text)
    return (1, {"avg": 0, "fold_final": 1}.get(text, 2), text)


def chain_scores(details: Iterable[Mapping[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """Per chain: the per-fold val scores with their mean and spread, and the test scores of
    the refit model (fold_final) and of the fold average (avg)."""
    out: dict[str, dict[str, Any]] = {}
    for row in details:
        chain_id = row.get("chain_id")
        if chain_id is None:
            continue
        entry = out.setdefault(
            str(chain_id), {"folds": [], "refit_test": None, "avg_test": None, "cv": None}
        )
        fold, part, score = str(row.get("fold_id")), row.get("partition"), score_of(row, metric)
        if part == "val" and _FOLD.match(fold):
            entry["folds"].append((fold, score))
        elif part == "test" and fold == "fold_final":
            entry["refit_test"] = score
        elif part == "test" and fold == "avg":
            entry["avg_test"] = score
        elif part == "val" and fold == "avg":
            entry["cv"] = score
    for entry in out.values():
        entry["folds"].sort(key=lambda item: fold_key(item[0]))
        values = [s for _, s in entry["folds"] if s is not None]
        entry["fold_mean"] = statistics.fmean(values) if values else None
        entry["fold_sd"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def board_row(row: Mapping[str, Any], detail: Mapping[str, Any] | None, metric: str) -> dict:
    """One leaderboard line from an avg/val prediction row and its chain's `chain_scores`."""
    detail = detail or {}
    return {
        "chain_id": row.get("chain_id"),
        "pipeline_id": row.get("pipeline_id"),
        "prediction_id": row.get("prediction_id"),
        "dataset": row.get("dataset_name"),
        "preprocessing": row.get("preprocessings") or "",
        "model_name": row.get("model_name"),
        "model_class": row.get("model_class"),
        "score": score_of(row, metric),
        "folds": [{"fold_id": f, "score": s} for f, s in detail.get("folds", [])],
        "fold_mean": detail.get("fold_mean"),
        "fold_sd": detail.get("fold_sd"),
        "refit_test": detail.get("refit_test"),
        "avg_test": detail.get("avg_test"),
    }


def score_grid(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One line per (fold, partition) with every metric: the chain page's score table."""
    lines = []
    for row in sorted(rows, key=lambda r: (fold_key(r.get("fold_id")), str(r.get("partition")))):
        lines.append(
            {
                "fold_id": row.get("fold_id"),
                "partition": row.get("partition"),
                "n_samples": row.get("n_samples"),
                "prediction_id": row.get("prediction_id"),
                "scores": {m: score_of(row, m) for m in metrics},
            }
        )
    return lines


def run_direction(run: Mapping[str, Any]) -> tuple[str, bool]:
    """(the run's metric, True when lower is better) from its recorded config."""
    config = decode(run.get("config")) or {}
    metric = str(config.get("metric") or "rmse") if isinstance(config, dict) else "rmse"
    ascending = config.get("ascending") if isinstance(config, dict) else None
    return metric, bool(metric_ascending(metric) if ascending is None else ascending)


def run_row(
    row: Mapping[str, Any], n_pipelines: int | None, n_failed: int, best_cv: float | None
) -> dict[str, Any]:
    """One line of the runs table."""
    summary = decode(row.get("summary")) or {}
    datasets = decode(row.get("datasets")) or []
    return {
        "run_id": row["run_id"],
        "name": row.get("name"),
        "status": display_status(row),
        "error": row.get("error"),
        "datasets": [d.get("name") for d in datasets if isinstance(d, dict)],
        "n_pipelines": n_pipelines,
        "n_failed": n_failed,
        "metric": run_direction(row)[0],
        "best_cv": best_cv,
        "duration_ms": run_duration_ms({**row, "summary": summary}),
        "created_at": row.get("created_at"),
        "completed_at": row.get("completed_at"),
    }


def facets_from_config(run: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Datasets, model classes and preprocessings of a run as `run()` records its config
    (model class = the last step's class, preprocessings = the other classes joined by '>'),
    None when the config does not say."""
    config = decode(run.get("config")) or {}
    pipelines = config.get("pipelines") if isinstance(config, dict) else None
    datasets = [d.get("name") for d in decode(run.get("datasets")) or [] if isinstance(d, dict)]
    if not (isinstance(pipelines, list) and pipelines and datasets):
        return None
    try:
        models = {str(p[-1]["operator_class"]) for p in pipelines if p}
        preps = {
            ">".join(str(s["operator_class"]).rsplit(".", 1)[-1] for s in p[:-1])
            for p in pipelines
            if p
        }
    except (KeyError, TypeError, IndexError):
        return None
    return {
        "datasets": sorted(set(map(str, datasets))),
        "model_classes": sorted(models),
        "preprocessings": sorted(preps),
    }


_SORT_FIELDS = {
    "score": "score",
    "refit_test": "refit_test",
    "fold_sd": "fold_sd",
    "dataset": "dataset",
    "preprocessing": "preprocessing",
    "model": "model_name",
}


def sort_rows(rows: list[dict[str, Any]], sort: str, ascending: bool) -> list[dict[str, Any]]:
    """Leaderboard rows sorted on one field; rows missing it come last either way."""
    name = _SORT_FIELDS[sort]
    present = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]
    numeric = all(isinstance(r[name], (int, float)) for r in present)
    key = (lambda r: r[name]) if numeric else (lambda r: str(r[name]))
    return sorted(present, key=key, reverse=not ascending) + missing


def artifact_roles(chain: Mapping[str, Any]) -> dict[str, list[str]]:
    """artifact id -> what it is in the chain ('step 0', 'fold_1', 'fold_final'...)."""
    roles: dict[str, list[str]] = {}
    for key, aid in (decode(chain.get("shared_artifacts")) or {}).items():
        roles.setdefault(str(aid), []).append(f"step {key}")
    for fold, aid in (decode(chain.get("fold_artifacts")) or {}).items():
        roles.setdefault(str(aid), []).append(str(fold))
    return roles


def family_of(row: Mapping[str, Any]) -> str:
    """A chain family: 'preprocessings|model_name' (the same steps and parameters)."""
    return f"{row.get('preprocessings') or ''}|{row.get('model_name')}"


def best_table(
    runs: Sequence[Mapping[str, Any]], metric: str
) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """(one line per run with its best chain per dataset, the datasets, dataset -> run id
    of the best of them). A cell shows the run's own metric; the best of a dataset is
    chosen among the runs scored with `metric`, else with the newest run's metric."""
    table, datasets = [], sorted({b["dataset_name"] for r in runs for b in r["best"]})
    for r in runs:
        cells = {
            b["dataset_name"]: {**b, "score": score_of(b, r["metric"]), "metric": r["metric"]}
            for b in r["best"]
        }
        table.append({"run": r["run"], "metric": r["metric"], "cells": cells})
    best_of: dict[str, str] = {}
    for ds in datasets:
        cells = [(t["cells"][ds], t["run"]["run_id"]) for t in table if ds in t["cells"]]
        cells = [(c, rid) for c, rid in cells if c["score"] is not None]
        if not cells:
            continue
        used = metric if any(c["metric"] == metric for c, _ in cells) else cells[0][0]["metric"]
        scored = [(c["score"], rid) for c, rid in cells if c["metric"] == used]
        best_of[ds] = (min if metric_ascending(used) else max)(scored)[1]
    return table, datasets, best_of


def family_trend(
    runs: Sequence[Mapping[str, Any]], family: str, metric: str
) -> list[dict[str, Any]]:
    """The family's cross-validated score in each run (oldest first) and dataset."""
    trend = []
    for r in reversed(runs):
        for c in r["chains"]:
            if family_of(c) == family:
                trend.append(
                    {
                        "run": r["run"],
                        "dataset": c["dataset_name"],
                        "chain_id": c["chain_id"],
                        "score": score_of(c, metric),
                    }
                )
    return trend


def run_duration_ms(run: Mapping[str, Any], now: dt.datetime | None = None) -> float | None:
    """The run's duration: its summary's, else completed (or now, while running) - created."""
    summary = decode(run.get("summary")) or {}
    if isinstance(summary, dict) and isinstance(summary.get("duration_ms"), (int, float)):
        return float(summary["duration_ms"])
    start, end = run.get("created_at"), run.get("completed_at")
    if not isinstance(start, dt.datetime):
        return None
    if not isinstance(end, dt.datetime):
        if run.get("status") != "running":
            return None
        end = now or dt.datetime.now(dt.timezone.utc)
    return max((end - start).total_seconds() * 1000.0, 0.0)


# -- formatting (Jinja filters) -----------------------------------------------------------


def fmt_score(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


def fmt_ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    seconds = value / 1000.0
    if seconds < 1:
        return f"{value:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def fmt_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


def fmt_bytes(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover
