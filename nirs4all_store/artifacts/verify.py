"""`verify`: mark and check the artifact vault.

It recomputes every reference count from the chains, checks each artifact row's file and
hash, and lists files no row claims (orphans: e.g. a crash between the atomic file write
and the commit). A free function given the vault: it needs nothing else of the facade.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from nirs4all_store.artifacts.files import sha256_file
from nirs4all_store.artifacts.vault import ArtifactVault
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
            or set(self.orphan_files) - set(self.removed_orphans)
        )

    def problems(self) -> dict[str, Any]:
        return {
            "ref_count_mismatches": self.ref_count_mismatches,
            "missing_files": self.missing_files,
            "orphan_files": [o for o in self.orphan_files if o not in self.removed_orphans],
            "corrupted_files": self.corrupted_files,
            "unknown_artifact_refs": self.unknown_artifact_refs,
        }


def verify_vault(vault: ArtifactVault, *, repair: bool, grace_seconds: float) -> VerifyReport:
    """Check (and with `repair`, fix) reference counts, files, hashes and orphans."""
    report = VerifyReport()

    def collect(session: Any) -> tuple[list[dict[str, Any]], list[tuple[str, set[str]]]]:
        rows = ArtifactRepository(session).all_rows()
        return rows, list(ChainRepository(session).all_references())

    with vault.deleting():
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
            path = vault.files.path(relpath)
            if not path.is_file():
                report.missing_files.append((row["artifact_id"], str(path)))
            elif sha256_file(path) != row["content_hash"]:
                report.corrupted_files.append((row["artifact_id"], str(path)))
        report.orphan_files = [f for f in vault.files.iter_files() if f not in claimed]

        if repair:
            if report.ref_count_mismatches:
                report.repaired_ref_counts = vault.uow.run(
                    lambda s: ArtifactRepository(s).repair_counts(report.ref_count_mismatches),
                    "verify(repair)",
                )
            for relpath in report.orphan_files:
                with contextlib.suppress(FileNotFoundError):
                    if vault.files.age_seconds(relpath) >= grace_seconds:
                        vault.files.delete(relpath)
                        report.removed_orphans.append(relpath)
            vault.files.remove_stale_temporaries(grace_seconds)
    return report
