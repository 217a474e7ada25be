"""Portable `.n4a` bundles: one chain and exactly its artifacts in a ZIP file.

Layout::

    manifest.json     format version, chain id, model class, task type, n_features,
                      wavelengths (the fitted axis, or null when the data had none),
                      versions (python, numpy, scikit-learn, nirs4all-store), and for
                      every artifact its file, format and SHA-256
    chain.json        steps, model_step_idx, fold_artifacts, shared_artifacts, ...
    artifacts/<sha256>.<ext>

`predict(bundle, X)` / `load_bundle(path).predict(X)` need no workspace and run the same
replay core as `WorkspaceStore.replay_chain`, so they give the same numbers.

SECURITY: artifacts are joblib/pickle files, and loading them executes code. Load only
bundles you trust (from your own workspace or a trusted colleague). The SHA-256 checks
catch corruption and tampering *after* export, not a malicious exporter.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nirs4all_store.artifacts import files
from nirs4all_store.durable import atomic_target
from nirs4all_store.errors import BundleError
from nirs4all_store.workbench import bundle_nirs4all as n4a
from nirs4all_store.workbench.axis import recorded_axis
from nirs4all_store.workbench.bundle_checks import check_member_name, read_json, read_member
from nirs4all_store.workbench.exports import export_file_name, resolve_output
from nirs4all_store.workbench.replay import (
    artifact_ids,
    expected_features,
    model_plan,
    replay_steps,
)

if TYPE_CHECKING:
    from nirs4all_store.store import WorkspaceStore

BUNDLE_FORMAT = "n4a"
BUNDLE_FORMAT_VERSION = 1
#: Refuse bundles that would inflate beyond this (a ZIP bomb guard); fitted NIRS models are
#: far smaller. `load_bundle(..., max_bytes=...)` raises or lowers it.
MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
MANIFEST_NAME = "manifest.json"
CHAIN_NAME = "chain.json"
ARTIFACTS_DIR = "artifacts"

#: The chain fields a bundle carries (what replay needs plus descriptive metadata).
CHAIN_FIELDS = (
    "chain_id",
    "pipeline_id",
    "steps",
    "model_step_idx",
    "model_class",
    "model_name",
    "preprocessings",
    "fold_strategy",
    "fold_artifacts",
    "shared_artifacts",
    "branch_path",
    "source_index",
    "metric",
    "task_type",
    "dataset_name",
)


def _versions() -> dict[str, str]:
    import sklearn

    from nirs4all_store import __version__

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "nirs4all_store": __version__,
    }


def export_chain(
    store: WorkspaceStore,
    chain_id: str,
    output_path: str | os.PathLike[str],
    format: str = BUNDLE_FORMAT,
) -> Path:
    """Write chain `chain_id` and its artifacts to a `.n4a` bundle; returns its path.

    KeyError for an unknown chain or artifact row; FileNotFoundError when an artifact's
    file is missing; ArtifactIntegrityError when one is corrupted. Nothing is left on disk
    when any of these happens (the bundle is written to a temporary file, then renamed).
    """
    from nirs4all_store.validation import check_id

    if format != BUNDLE_FORMAT:
        raise ValueError(f"unsupported bundle format {format!r}: expected {BUNDLE_FORMAT!r}")
    check_id("chain_id", chain_id)
    chain_row = store.get_chain(chain_id)
    if chain_row is None:
        raise KeyError(f"unknown chain_id {chain_id!r}")
    chain = {field: chain_row.get(field) for field in CHAIN_FIELDS}
    ids = artifact_ids(chain)  # also validates the chain (RuntimeError when unreplayable)

    entries: dict[str, dict[str, Any]] = {}
    payloads: dict[str, bytes] = {}
    for artifact_id in ids:
        row = store.get_artifact(artifact_id)
        if row is None:
            raise KeyError(f"chain {chain_id} references unknown artifact_id {artifact_id!r}")
        source = store.get_artifact_path(artifact_id)
        data = files.ArtifactFiles(source.parent).read_verified(
            source.name, row["content_hash"], artifact_id
        )
        member = f"{ARTIFACTS_DIR}/{row['content_hash']}.{files.FORMAT_EXTENSIONS[row['format']]}"
        payloads[member] = data
        entries[artifact_id] = {
            "file": member,
            "format": row["format"],
            "sha256": row["content_hash"],
            "size_bytes": len(data),
            "operator_class": row.get("operator_class"),
            "artifact_type": row.get("artifact_type"),
        }

    n_features, axis = _fitted_shape(chain, entries, payloads)

    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "chain_id": chain_id,
        "pipeline_id": chain.get("pipeline_id"),
        "model_class": chain.get("model_class"),
        "model_name": chain.get("model_name"),
        "preprocessings": chain.get("preprocessings"),
        "fold_strategy": chain.get("fold_strategy"),
        "task_type": chain.get("task_type"),
        "dataset_name": chain.get("dataset_name"),
        "n_features": n_features,
        "wavelengths": axis,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "versions": _versions(),
        "artifacts": entries,
    }
    target = (
        Path(os.fspath(output_path)).expanduser()
        if isinstance(output_path, (str, os.PathLike))
        else None
    )
    if target is not None and target.is_dir():
        # Into the folder, named after the chain (it once wrote `<folder>.n4a` beside it).
        output_path = target / export_file_name(chain_id, f".{BUNDLE_FORMAT}")
    path = resolve_output(store, output_path, f".{BUNDLE_FORMAT}")
    with atomic_target(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, allow_nan=False))
        zf.writestr(CHAIN_NAME, json.dumps(chain, indent=2, default=str, allow_nan=False))
        for member, data in payloads.items():
            zf.writestr(member, data)
    return path


def _fitted_shape(
    chain: Mapping[str, Any], entries: Mapping[str, Any], payloads: Mapping[str, bytes]
) -> tuple[int | None, list[float] | None]:
    """(n_features, wavelength axis) the chain was fitted on: the width from the first object
    applied, the axis from the first model object that records `wavelengths_` (run() sets it
    on every fitted pipeline of a dataset with wavelengths)."""
    ids = artifact_ids(chain)
    if not ids:
        return None, None

    def load(artifact_id: str) -> Any:
        entry = entries[artifact_id]
        return files.deserialize(payloads[entry["file"]], entry["format"])

    first = load(ids[0])
    axis = recorded_axis(first)
    if axis is None:
        axis = recorded_axis(load(model_plan(chain)[0][1][-1]))
    return expected_features(first), None if axis is None else axis.tolist()


class Bundle:
    """A loaded `.n4a` bundle: verified, deserialised once, ready to predict many times.

    SECURITY: loading deserialises joblib/pickle artifacts, which executes code; load only
    bundles you trust.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        chain: dict[str, Any],
        objects: dict[str, Any],
        path: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.chain = chain
        self.path = path
        self._objects = objects

    @property
    def chain_id(self) -> str:
        return str(self.manifest["chain_id"])

    @property
    def n_features(self) -> int | None:
        value = self.manifest.get("n_features")
        return int(value) if isinstance(value, int) else None

    @property
    def wavelengths(self) -> np.ndarray | None:
        """The wavelength axis the chain was fitted on (None: not recorded, old bundles)."""
        value = self.manifest.get("wavelengths")
        if not isinstance(value, list) or not value:
            return None
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise BundleError(f"bundle {self.path}: manifest wavelengths are not numbers") from None

    def predict(self, X: Any, wavelengths: Any = None, proba: bool = False) -> np.ndarray:
        """Same contract as `WorkspaceStore.replay_chain`: SpectralAxisError (a ValueError)
        when X has another width, or `wavelengths` are not the bundle's axis."""
        return replay_steps(
            self.chain,
            self._objects.__getitem__,
            X,
            wavelengths=wavelengths,
            proba=proba,
            n_features=self.n_features,
            axis=self.wavelengths,
        )

    def __repr__(self) -> str:
        return (
            f"Bundle(chain_id={self.chain_id!r}, model_class={self.manifest.get('model_class')!r})"
        )


def _read_payloads(
    zf: zipfile.ZipFile, manifest: dict[str, Any], chain: dict[str, Any], where: str
) -> dict[str, tuple[bytes, str]]:
    """(bytes, format) of every artifact the chain uses, each checked against its manifest
    entry (safe member name, known format, SHA-256) before anything is unpickled."""
    entries = manifest.get("artifacts")
    if not isinstance(entries, dict):
        raise BundleError(f"{where}: manifest.json has no 'artifacts' mapping")
    try:
        needed = artifact_ids(chain)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where}: chain.json cannot be replayed: {exc}") from None
    missing = [aid for aid in needed if aid not in entries]
    if missing:
        raise BundleError(f"{where}: chain uses artifact(s) {missing} not listed in the manifest")
    payloads: dict[str, tuple[bytes, str]] = {}
    for artifact_id in needed:
        entry = entries[artifact_id]
        member = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(member, str) or not member.startswith(f"{ARTIFACTS_DIR}/"):
            raise BundleError(f"{where}: artifact {artifact_id} has no valid file entry: {entry!r}")
        check_member_name(member)
        fmt = entry.get("format")
        if fmt not in files.FORMAT_EXTENSIONS:
            raise BundleError(f"{where}: artifact {artifact_id} has unsupported format {fmt!r}")
        try:
            data = read_member(zf, member, where)
        except KeyError:
            raise BundleError(f"{where}: artifact {artifact_id} file {member} is missing") from None
        actual = files.sha256_bytes(data)
        if actual != entry.get("sha256"):
            raise BundleError(
                f"{where}: artifact {artifact_id} ({member}) fails its SHA-256 check: "
                f"{actual} != manifest {entry.get('sha256')}; the bundle was corrupted or "
                "tampered with"
            )
        payloads[artifact_id] = (data, fmt)
    return payloads


def load_bundle(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_UNCOMPRESSED_BYTES
) -> Bundle | n4a.Nirs4allBundle:
    """Open, verify and deserialise a `.n4a` bundle.

    Checks, before any artifact is unpickled: member names are safe, the format version is
    known, every artifact the chain uses is present and matches its SHA-256 (bundles nirs4all
    0.8 wrote itself: see `bundle_nirs4all`, a `Nirs4allBundle` or a `Bundle`). Warns when the
    bundle was made with another scikit-learn version. BundleError for anything wrong.
    SECURITY: deserialising executes code from the bundle; load only bundles you trust.
    """
    source = Path(path).expanduser()
    where = f"bundle {source}"
    if source.is_dir():
        raise BundleError(f"{where} is a folder, not a .n4a bundle file")
    if not source.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise BundleError(f"{where} is not a ZIP file: {exc}") from None
    with zf:
        names = zf.namelist()
        for name in names:
            check_member_name(name)
        if len(set(names)) != len(names):
            raise BundleError(f"{where} has duplicate member names")
        total = sum(info.file_size for info in zf.infolist())
        if total > max_bytes:
            raise BundleError(
                f"{where} would inflate to {total:,} bytes, over the {max_bytes:,}-byte limit "
                "(pass max_bytes= to load_bundle if you trust it)"
            )
        manifest = read_json(zf, MANIFEST_NAME, where)
        if not isinstance(manifest, dict):
            raise BundleError(f"{where}: manifest.json must be an object")
        if n4a.is_nirs4all_manifest(manifest, names):  # written by nirs4all 0.8 itself
            loaded = n4a.load_nirs4all_bundle(zf, names, manifest, where, source)
            if isinstance(loaded, n4a.Nirs4allBundle):
                return loaded
            return Bundle(*loaded, path=source.resolve())
        version = manifest.get("format_version")
        if version != BUNDLE_FORMAT_VERSION:
            raise BundleError(
                f"{where} has format_version {version!r}; this nirs4all-store reads version "
                f"{BUNDLE_FORMAT_VERSION} (upgrade the package for newer bundles)"
            )
        chain = read_json(zf, CHAIN_NAME, where)
        if not isinstance(chain, dict):
            raise BundleError(f"{where}: chain.json must be an object")
        payloads = _read_payloads(zf, manifest, chain, where)
    _warn_versions(manifest, where)
    objects = {aid: _deserialize(data, fmt, aid, where) for aid, (data, fmt) in payloads.items()}
    return Bundle(manifest, chain, objects, path=source.resolve())


def _deserialize(data: bytes, fmt: str, artifact_id: str, where: str) -> Any:
    """Bytes that pass their hash but are no pickle (a forged manifest) raised IndexError or
    KeyError from inside pickle: a BundleError naming the artifact instead."""
    try:
        return files.deserialize(data, fmt)
    except Exception as exc:
        raise BundleError(
            f"{where}: artifact {artifact_id} cannot be deserialised as {fmt}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _warn_versions(manifest: Mapping[str, Any], where: str) -> None:
    import sklearn

    versions = manifest.get("versions") or {}
    made_with = versions.get("scikit-learn") if isinstance(versions, Mapping) else None
    if made_with and made_with != sklearn.__version__:
        warnings.warn(
            f"{where} was made with scikit-learn {made_with}, running scikit-learn "
            f"{sklearn.__version__}: predictions may differ or fail",
            UserWarning,
            stacklevel=3,
        )


def predict(
    bundle: str | os.PathLike[str] | Bundle | n4a.Nirs4allBundle,
    X: Any,
    wavelengths: Any = None,
    proba: bool = False,
) -> np.ndarray:
    """Predict with a `.n4a` bundle (a path or a loaded `Bundle`), no workspace needed.

    Gives the same numbers as `WorkspaceStore.replay_chain` on the exported chain.
    SECURITY: loading a bundle executes code from its pickled artifacts; use only bundles
    you trust. To predict many times, `load_bundle` once and call `.predict`.
    """
    loaded = bundle if isinstance(bundle, (Bundle, n4a.Nirs4allBundle)) else load_bundle(bundle)
    return loaded.predict(X, wavelengths=wavelengths, proba=proba)
