"""Workspace maintenance commands: gc, verify, vacuum, delete-run."""

from __future__ import annotations

import argparse

from nirs4all_store.cli.output import emit
from nirs4all_store.cli.workspace import find_run, open_store


def cmd_gc(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        out = store.gc_artifacts(grace_seconds=args.grace, dry_run=args.dry_run)
    if args.dry_run:
        emit(args, {"would_remove": out}, f"would remove {len(out)} unreferenced artifact(s)")
    else:
        emit(args, {"removed": out}, f"removed {out} unreferenced artifact(s)")
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


def cmd_vacuum(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        info = store.vacuum()
    emit(args, info, lambda: "vacuumed: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return 0


def cmd_delete_run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        run_id = find_run(store, args.run_id)["run_id"]
        n = store.delete_run(run_id, delete_artifacts=not args.keep_artifacts)
    emit(args, {"run_id": run_id, "rows_deleted": n}, f"deleted run {run_id} ({n} rows)")
    return 0
