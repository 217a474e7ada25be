"""Workspace maintenance commands: gc, verify, vacuum, delete-run.

The two that delete (gc, delete-run) ask before doing it on a terminal (`--yes` skips the
question, scripts off a terminal are not asked) and list what would go with `--dry-run`.
"""

from __future__ import annotations

import argparse
from typing import Any

from nirs4all_store.cli.errors import CliError
from nirs4all_store.cli.output import confirm, emit
from nirs4all_store.cli.workspace import find_run, open_store


def cmd_gc(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        candidates = store.gc_artifacts(grace_seconds=args.grace, dry_run=True)
        ids = [str(c) for c in candidates]
        if args.dry_run or not ids:
            data = {"dry_run": args.dry_run, "removed": 0, "would_remove": len(ids), "ids": ids}
            text = f"would remove {len(ids)} unreferenced artifact(s)" + "".join(
                f"\n  {i}" for i in ids
            )
            emit(args, data, text if args.dry_run else "no unreferenced artifact: nothing to do")
            return 0
        if not confirm(args, f"remove {len(ids)} unreferenced artifact(s) and their files?"):
            raise CliError("gc cancelled: nothing removed")
        removed = store.gc_artifacts(grace_seconds=args.grace, dry_run=False)
    data = {"dry_run": False, "removed": int(removed), "would_remove": len(ids), "ids": ids}
    emit(args, data, f"removed {removed} unreferenced artifact(s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        report = store.verify(repair=args.repair)
    problems = {k: v for k, v in report.problems().items() if v}
    text = (
        "ok"
        if report.ok
        else "problems found:\n" + "\n".join(f"  {k}: {v}" for k, v in problems.items())
    )
    if args.repair:
        text += (
            f"\nrepaired {report.repaired_ref_counts} reference count(s), "
            f"removed {len(report.removed_orphans)} orphan file(s)"
        )
    emit(
        args,
        {
            "ok": report.ok,
            "problems": problems,
            "repaired_ref_counts": report.repaired_ref_counts,
            "removed_orphans": report.removed_orphans,
        },
        text,
    )
    return 0 if report.ok else 1


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def cmd_vacuum(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        info = store.vacuum()
    seconds = round(float(info.get("seconds") or 0.0), 2)
    data = {**info, "seconds": seconds}
    before, after = info.get("before_bytes"), info.get("after_bytes")
    sizes = f": {_size(before)} -> {_size(after)}" if before is not None else ""
    emit(args, data, f"vacuumed in {seconds:.2f} s{sizes}")
    return 0


def _run_contents(store: Any, run_id: str) -> dict[str, int]:
    pipelines = store.list_pipelines(run_id=run_id).column("pipeline_id").to_pylist()
    chains = sum(store.get_chains_for_pipeline(p).num_rows for p in pipelines)
    predictions = store.query_predictions(run_id=run_id).num_rows
    return {"pipelines": len(pipelines), "chains": chains, "predictions": predictions}


def cmd_delete_run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        run = find_run(store, args.run_id)
        run_id = run["run_id"]
        contents = _run_contents(store, run_id)
        what = (
            f"run {run_id} ({run['name']!r}, {run['status']}): {contents['pipelines']} "
            f"pipeline(s), {contents['chains']} chain(s), {contents['predictions']} prediction(s)"
        )
        if args.dry_run:
            emit(
                args,
                {"run_id": run_id, "dry_run": True, "rows_deleted": 0, "would_delete": contents},
                f"would delete {what}",
            )
            return 0
        if not confirm(args, f"delete {what}?"):
            raise CliError("delete-run cancelled: nothing deleted")
        n = store.delete_run(run_id, delete_artifacts=not args.keep_artifacts)
    emit(
        args,
        {"run_id": run_id, "dry_run": False, "rows_deleted": n, "would_delete": contents},
        f"deleted {what} ({n} rows)",
    )
    return 0
