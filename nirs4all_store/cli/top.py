"""`top`: the leaderboard of predictions, ranked by any stored score.

Every prediction stores its scores as JSON (`{"val": {"rmse": ..., "r2": ..., ...}}`), not
only the run's ranking metric in `val_score`, so `--metric r2` ranks a run trained on rmse.
Predictions without that score (a classification run among regressions) are left out and
counted, by run, in the output.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from typing import Any

from nirs4all_store.cli.errors import PROG, CliError
from nirs4all_store.cli.output import decode_json, emit, short
from nirs4all_store.cli.tables import render
from nirs4all_store.cli.workspace import find_run, open_store, run_result
from nirs4all_store.workbench.training import SCORE_COLUMN, metric_ascending

#: Scores with an ideal value rather than a direction: ranked by the distance to it.
IDEAL = {"bias": 0.0, "slope": 1.0}


def score_of(row: dict[str, Any], metric: str, partition: str) -> float | None:
    """The `metric` score of a prediction on `partition` (scores JSON, else its score column)."""
    scores = row.get("scores") or {}
    part = scores.get(partition) if isinstance(scores, dict) else None
    value = part.get(metric) if isinstance(part, dict) else None
    if value is None and row.get("metric") == metric:
        value = row.get(SCORE_COLUMN[partition])
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


def _stored_metrics(rows: list[dict[str, Any]], partition: str) -> list[str]:
    names: dict[str, None] = {}
    for r in rows:
        part = (r.get("scores") or {}).get(partition)
        names.update(dict.fromkeys(part or {}))
        if r.get("metric"):
            names[r["metric"]] = None
    return sorted(names)


def _default_metric(args: argparse.Namespace, store: Any, run: dict | None, rows: list) -> str:
    if args.metric:
        return str(args.metric)
    if run is not None:
        return run_result(store, run).metric
    newest = max(rows, key=lambda r: (r["created_at"], r["prediction_id"]), default=None)
    return str(newest["metric"]) if newest and newest.get("metric") else "rmse"


def _left_out(rows: list[dict[str, Any]], runs: dict[str, str | None]) -> list[dict[str, Any]]:
    counts = Counter(
        (runs.get(r["pipeline_id"]), r.get("metric"), r.get("task_type")) for r in rows
    )
    return [
        {"run_id": run_id, "metric": metric, "task_type": task, "count": n}
        for (run_id, metric, task), n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]


def cmd_top(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {"partition": args.partition}
    if args.fold != "all":
        filters["fold_id"] = args.fold
    if args.dataset:
        filters["dataset_name"] = args.dataset
    with open_store(args) as store:
        run = find_run(store, args.run) if args.run else None
        run_id = run["run_id"] if run else None
        rows = [
            decode_json(r) for r in store.query_predictions(run_id=run_id, **filters).to_pylist()
        ]
        runs = {
            p["pipeline_id"]: p["run_id"] for p in store.list_pipelines(run_id=run_id).to_pylist()
        }
        metric = _default_metric(args, store, run, rows)
    scored = [(score_of(r, metric, args.partition), r) for r in rows]
    ranked = [(s, r) for s, r in scored if s is not None]
    if rows and not ranked:
        raise CliError(
            f"no {args.partition} prediction has a {metric!r} score; stored scores: "
            f"{', '.join(_stored_metrics(rows, args.partition))} (see `{PROG} top --help`)"
        )
    ascending = metric_ascending(metric) if args.order is None else args.order == "asc"

    def key(item: tuple[float, dict[str, Any]]) -> tuple[float, str]:
        value = item[0]
        if metric in IDEAL and args.order is None:
            value = abs(value - IDEAL[metric])
        return (value if ascending or metric in IDEAL else -value, item[1]["prediction_id"])

    ranked.sort(key=key)
    best = ranked[: args.n]
    out_rows = [
        {"rank": i, "run_id": runs.get(r["pipeline_id"]), "score": s, **r}
        for i, (s, r) in enumerate(best, start=1)
    ]
    left = _left_out([r for s, r in scored if s is None], runs)
    data = {
        "metric": metric,
        "partition": args.partition,
        "fold": args.fold,
        "ascending": ascending,
        "ranked": len(ranked),
        "rows": out_rows,
        "left_out": left,
    }
    emit(args, data, lambda: _text(data))
    return 0


def _text(data: dict[str, Any]) -> str:
    metric, partition = data["metric"], data["partition"]
    if not data["rows"] and not data["left_out"]:
        return "(no predictions)"
    order = (
        f"closest to {IDEAL[metric]:g}"
        if metric in IDEAL
        else ("lower is better" if data["ascending"] else "higher is better")
    )
    head = (
        f"{partition} {metric} ({order}), fold {data['fold']}: "
        f"best {len(data['rows'])} of {data['ranked']} prediction(s)"
    )
    table = [
        {
            "rank": r["rank"],
            "run_id": short(r["run_id"]),
            "dataset": r["dataset_name"],
            "preprocessing": r.get("preprocessings") or "-",
            "model": r["model_name"],
            "fold": r["fold_id"],
            f"{partition} {metric}": r["score"],
            "chain_id": short(r["chain_id"]),
            "prediction_id": short(r["prediction_id"]),
        }
        for r in data["rows"]
    ]
    lines = [head, render(table)]
    for item in data["left_out"]:
        scored_with = f"scored with {item['metric']}" if item["metric"] else "unscored"
        lines.append(
            f"left out {item['count']} {item['task_type'] or ''} prediction(s) of run "
            f"{short(item['run_id'])} without a {partition} {metric} ({scored_with}: "
            f"--metric {item['metric']})"
        )
    return "\n".join(line for line in lines if line)
