"""`verify`: mark and check the artifact vault.

It recomputes every reference count from the chains, checks each artifact row's file and
hash, and lists files no row claims (orphans: e.g. a crash between the atomic file write
and the commit). A free function given the vault: it needs nothing else of the facade.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nirs4all_store.artifacts.files import sha256_file
from nirs4all_store.artifacts.vault import ArtifactVault, check_grace
from nirs4all_store.durable import atomic_write
from nirs4all_store.errors import StoreError
from nirs4all_store.repositories import ArtifactRepository, ChainRepository


@dataclass
class VerifyReport:
    """What `WorkspaceStore.verify` found (and, with repair, fixed)."""

    ref_count_mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    """(artifact_id, stored ref_count, references recomputed from chains)"""
    missing_files: list[tuple[str, str]] = field(default_factory=list)
    """(artifact_id, absolute path) of rows whose file is gone"""
    orphan_files: list[str] = field(default_factory=list)
    """files under artifacts/ that no row claims (relative paths)"""
    corrupted_files: list[tuple[str, str]] = field(default_factory=list)
    """(artifact_id, absolute path) whose bytes no longer match the recorded SHA-256"""
    unknown_artifact_refs: list[tuple[str, str]] = field(default_factory=list)
    """(chain_id, artifact_id) where a chain names an artifact that has no row"""
    unsafe_paths: list[tuple[str, str]] = field(default_factory=list)
    """(artifact_id, path) of rows whose path leaves the artifacts folder (never followed)"""
    repaired_ref_counts: int = 0
    removed_orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (orphans removed by repair do not count)."""
        return not (
            self.ref_count_mismatches
            or self.missing_files
            or self.corrupted_files
            or self.unknown_artifact_refs
            or self.unsafe_paths
            or set(self.orphan_files) - set(self.removed_orphans)
        )

    def problems(self) -> dict[str, Any]:
        return {
            "ref_count_mismatches": self.ref_count_mismatches,
            "missing_files": self.missing_files,
            "orphan_files": [o for o in self.orphan_files if o not in self.removed_orphans],
            "corrupted_files": self.corrupted_files,
            "unknown_artifact_refs": self.unknown_artifact_refs,
            "unsafe_paths": self.unsafe_paths,
        }


def verify_vault(
    vault: ArtifactVault, *, repair: bool, grace_seconds: float, force: bool = False
) -> VerifyReport:
    """Check (and with `repair`, fix) reference counts, files, hashes and orphans.

    Rows, counts and hashes are checked without the artifact lock (hashing a large vault
    takes a while; transactions keep going); orphans are listed and removed under the
    exclusive lock, against the rows committed by then: every save in flight holds the
    shared lock until its commit, so its file is claimed by a committed row when they are
    judged (issue 15 item 1).
    """
    grace = check_grace(grace_seconds)
    if repair and vault.in_transaction:
        raise StoreError(
            "verify(repair=True) cannot run inside store.transaction(): it must see every "
            "committed row; call it outside the transaction"
        )
    report = VerifyReport()
    claimed = _check_rows(vault, report)
    if repair and report.ref_count_mismatches:
        report.repaired_ref_counts = vault.uow.run(
            lambda s: ArtifactRepository(s).repair_counts(report.ref_count_mismatches),
            "verify(repair)",
        )
    with vault.deleting():
        claimed |= vault.uow.run(
            lambda s: {r["artifact_path"] for r in ArtifactRepository(s).all_rows()}, "verify"
        )
        report.orphan_files = [f for f in vault.files.iter_files() if f not in claimed]
        if repair:
            _remove_orphans(vault, report, grace, force=force, claimed=claimed)
            vault.files.remove_stale_temporaries(grace)
    return report


def _check_rows(vault: ArtifactVault, report: VerifyReport) -> set[str]:
    """Reference counts, files and hashes of every row; returns the paths the rows claim."""

    def collect(session: Any) -> tuple[list[dict[str, Any]], list[tuple[str, set[str]]]]:
        rows = ArtifactRepository(session).all_rows()
        return rows, list(ChainRepository(session).all_references())

    rows, chain_refs = vault.uow.run(collect, "verify")
    known = {r["artifact_id"] for r in rows}
    expected: dict[str, int] = dict.fromkeys(known, 0)
    for chain_id, refs in chain_refs:
        for artifact_id in sorted(refs):
            if artifact_id in known:
                expected[artifact_id] += 1
            else:
                report.unknown_artifact_refs.append((chain_id, artifact_id))
    claimed: set[str] = set()
    for row in rows:
        stored, want = int(row["ref_count"]), expected[row["artifact_id"]]
        if stored != want:
            report.ref_count_mismatches.append((row["artifact_id"], stored, want))
        relpath = row["artifact_path"]
        claimed.add(relpath)
        if not vault.files.is_safe(relpath):
            report.unsafe_paths.append((row["artifact_id"], str(relpath)))
            continue
        path = vault.files.path(relpath)
        if not path.is_file():
            report.missing_files.append((row["artifact_id"], str(path)))
        elif sha256_file(path) != row["content_hash"]:
            report.corrupted_files.append((row["artifact_id"], str(path)))
    return claimed


def _remove_orphans(
    vault: ArtifactVault, report: VerifyReport, grace: float, *, force: bool, claimed: set[str]
) -> None:
    old = []
    for relpath in report.orphan_files:
        with contextlib.suppress(FileNotFoundError):
            if vault.files.age_seconds(relpath) >= grace:
                old.append(relpath)
    if len(old) > 1 and not claimed and not force:
        # No row claims any file: the database is likely missing, empty or the wrong one
        # (issue 15 item 5: a deleted store.duckdb then repair removed all 22 files). A single
        # orphan beside an empty database is an ordinary leftover (a rolled-back first save).
        raise StoreError(
            f"verify(repair=True) would delete all {len(old)} artifact files of "
            f"{vault.files.root}: no artifact row in this database claims any of them. If "
            "this is the right database and they are truly unused, call "
            "verify(repair=True, force=True)"
        )
    for relpath in old:
        if vault.files.delete(relpath):
            report.removed_orphans.append(relpath)


#: The last verify() result, beside the database (workspace folder): what a dashboard or a
#: later session shows as "last checked" (a read-only verify records nothing).
VERIFY_RECORD = ".last_verify.json"


def record_verify(path: Path, report: VerifyReport, repair: bool, seconds: float) -> None:
    """Write the record atomically; a folder that cannot be written just gets none."""
    record = {
        "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "ok": bool(report.ok),
        "repair": bool(repair),
        "duration_s": round(seconds, 3),
        "problems": {k: v for k, v in report.problems().items() if v},
    }
    with contextlib.suppress(OSError):
        atomic_write(path, json.dumps(record, default=str).encode())


def read_verify_record(path: Path) -> dict[str, Any] | None:
    """The record `record_verify` wrote, `checked_at` as a datetime; None if absent/bad."""
    try:
        record = json.loads(path.read_text())
        record["checked_at"] = dt.datetime.fromisoformat(record["checked_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None
