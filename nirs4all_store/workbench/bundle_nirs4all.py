"""Reading the `.n4a` bundles nirs4all 0.8.x writes itself (no `format_version`).

nirs4all 0.8 writes two layouts (read from its `pipeline/bundle/generator.py` and
`WorkspaceStore.export_chain`, 0.8.11):

- `result.export(path)` (BundleGenerator): ``manifest.json`` with ``bundle_format_version``,
  ``pipeline.json`` (steps, model_step_index), optional ``trace.json`` and
  ``fold_weights.json``, artifacts named ``artifacts/step_<i>[_fold<k>]_<Class>.joblib``.
  Prediction follows nirs4all's `nirs4all.predict(bundle, X)` exactly (spectra as float32,
  as its dataset holds them, then its `BundleLoader`): steps in index order, each step's
  objects applied with ``transform(X)``, ``feature_augmentation`` steps concatenated after
  X, ``y_processing`` inverted on the output; the model step predicts with its refit model
  (``fold final``), else the weighted mean of its fold models (``fold_weights.json``), else
  its single model.
- `store.export_chain(...)` / `result.export(path, chain_id=...)`: ``manifest.json`` with
  ``chain_id``, ``chain.json`` (nirs4all's chain row) and artifacts named after their
  workspace files, ``<type>_<Class>_<first 12 hex of SHA-256>.joblib``. These replay like a
  chain of this store (`replay_steps`); each artifact id is matched to the one file of its
  step's operator class, and its bytes must match the SHA-256 prefix of its name.

What nirs4all does not write cannot be checked: layout 1 has no hashes at all. Routing by
metadata partitioner, branches and stacking (meta-models) are refused (BundleError), not
guessed. Member-name, size and JSON guards (`bundle_checks`) apply as to our own bundles.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nirs4all_store.artifacts import files
from nirs4all_store.errors import BundleError
from nirs4all_store.workbench.bundle_checks import read_json, read_member
from nirs4all_store.workbench.replay import artifact_ids, check_fitted_shape, check_input

__all__ = ["Nirs4allBundle", "is_nirs4all_manifest", "load_nirs4all_bundle"]

ARTIFACTS_DIR = "artifacts"
CHAIN_NAME = "chain.json"
_STEP_FILE = re.compile(r"^step_(\d+)(?:_(fold[A-Za-z0-9]+))?(?:_([A-Za-z0-9_]+))?\.joblib$")
_CHAIN_FILE = re.compile(r"^(?:[a-z_]+?)_([A-Za-z0-9]+)_([0-9a-f]{12})\.(joblib|pkl)$")
_REFIT_FOLDS = ("foldfinal", "final")
_UNSUPPORTED_TYPES = ("meta_model", "branch", "merge")


def _deserialize(data: bytes, member: str, where: str) -> Any:
    """A joblib payload; bytes that are no pickle are a BundleError naming the member."""
    try:
        return files.deserialize(data, "joblib")
    except Exception as exc:
        raise BundleError(
            f"{where}: {member} cannot be deserialised as joblib: {type(exc).__name__}: {exc}"
        ) from exc


def is_nirs4all_manifest(manifest: Mapping[str, Any], names: list[str]) -> bool:
    """A manifest written by nirs4all 0.8 (either layout), not by this library."""
    if "format_version" in manifest:
        return False
    if "bundle_format_version" in manifest and "pipeline.json" in names:
        return True
    return "chain_id" in manifest and "exported_at" in manifest and CHAIN_NAME in names


def _operator_types(zf: zipfile.ZipFile, names: list[str], where: str) -> dict[int, str]:
    """step index -> nirs4all operator type, from trace.json if present, else pipeline.json
    (nirs4all's `_extract_step_info_from_config`: steps are 1-based there)."""
    types: dict[int, str] = {}
    if "trace.json" in names:
        trace = read_json(zf, "trace.json", where)
        for step in (trace or {}).get("steps") or []:
            if not isinstance(step, Mapping):
                continue
            if step.get("branch_path"):
                raise BundleError(f"{where}: branched nirs4all pipelines are not supported")
            if str(step.get("execution_mode", "")).lower() == "skip":
                types[int(step["step_index"])] = "skip"
            else:
                types[int(step["step_index"])] = str(step.get("operator_type") or "transform")
        return types
    config = read_json(zf, "pipeline.json", where)
    for position, step in enumerate((config or {}).get("steps") or [], start=1):
        if isinstance(step, Mapping):
            kind = next(
                (
                    k
                    for k in ("y_processing", "feature_augmentation", "model", *_UNSUPPORTED_TYPES)
                    if k in step
                ),
                "transform",
            )
            types[position] = kind
    return types


class Nirs4allBundle:
    """A nirs4all 0.8 `result.export()` bundle (layout 1), predicting as nirs4all does.

    The same surface as `bundle.Bundle` (manifest, chain, path, chain_id, n_features,
    wavelengths, predict)."""

    def __init__(
        self,
        manifest: dict[str, Any],
        steps: dict[int, list[tuple[str | None, Any]]],
        types: dict[int, str],
        fold_weights: dict[int, float],
        path: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.chain = {
            "chain_id": manifest.get("pipeline_uid"),
            "model_step_idx": manifest.get("model_step_index"),
        }
        self.path = path
        self._steps = steps
        self._types = types
        self._fold_weights = fold_weights

    n_features = None  #: nirs4all records none: the width comes from the first fitted object
    wavelengths = None  #: nor an axis

    def __repr__(self) -> str:
        return f"Nirs4allBundle(pipeline_uid={self.chain_id!r}, path={str(self.path)!r})"

    @property
    def chain_id(self) -> str:
        return str(self.manifest.get("pipeline_uid"))

    def _model_output(self, X: np.ndarray, entries: list[tuple[str | None, Any]]) -> np.ndarray:
        refit = [obj for fold, obj in entries if fold in _REFIT_FOLDS]
        if refit:
            return np.asarray(refit[0].predict(X))
        folds = sorted((int(fold[4:]), obj) for fold, obj in entries if fold and fold[4:].isdigit())
        if not folds:
            return np.asarray(entries[0][1].predict(X))
        outputs = [(self._fold_weights.get(k, 1.0), np.asarray(m.predict(X))) for k, m in folds]
        if self._fold_weights:
            total = sum(w for w, _ in outputs)
            return np.asarray(sum(w * y for w, y in outputs) / total)
        return np.asarray(np.mean([y for _, y in outputs], axis=0))

    def predict(self, X: Any, wavelengths: Any = None, proba: bool = False) -> np.ndarray:
        """nirs4all's `BundleLoader.predict` on these objects; SpectralAxisError (a
        ValueError) when X has another width or `wavelengths` are not the fitted axis."""
        if proba:
            raise ValueError("proba=True is not available for bundles written by nirs4all 0.8")
        X, wl = check_input(X, wavelengths)
        # nirs4all.predict(bundle, X) passes X through its SpectroDataset, which holds float32:
        # on float64 input the first-stage transform then differs by ~5e-7 (relative).
        X = X.astype(np.float32)
        model_idx = self.chain["model_step_idx"]
        order = sorted(self._steps)
        firsts = [self._steps[i][0][1] for i in order if self._types.get(i) != "y_processing"]
        check_fitted_shape(self.chain_id, firsts[:1], X.shape[1], wl, None, None)
        y_step: int | None = None
        for idx in order:
            kind = self._types.get(idx, "transform")
            objects = [obj for _, obj in self._steps[idx]]
            if kind == "skip":
                continue
            if kind == "y_processing":
                y_step = idx
            elif idx == model_idx:
                return self._inverse_y(self._model_output(X, self._steps[idx]), y_step)
            elif kind == "feature_augmentation":
                X = np.hstack([X, *(o.transform(X) for o in objects if hasattr(o, "transform"))])
            else:
                for obj in objects:
                    if hasattr(obj, "transform"):
                        X = obj.transform(X)
        raise BundleError(f"bundle {self.path}: no artifact for model step {model_idx}")

    def _inverse_y(self, y: np.ndarray, y_step: int | None) -> np.ndarray:
        if y_step is None:
            return y
        for _, obj in self._steps[y_step]:
            if hasattr(obj, "inverse_transform"):
                y = (
                    obj.inverse_transform(y.reshape(-1, 1)).ravel()
                    if y.ndim == 1
                    else (obj.inverse_transform(y))
                )
        return y


def _load_generator_bundle(
    zf: zipfile.ZipFile, names: list[str], manifest: dict[str, Any], where: str, source: Path
) -> Nirs4allBundle:
    if manifest.get("partitioner_routing"):
        raise BundleError(f"{where}: metadata-partitioner routing is not supported")
    try:
        types = _operator_types(zf, names, where)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where}: trace.json / pipeline.json is malformed: {exc!r}") from None
    unsupported = sorted({t for t in types.values() if t in _UNSUPPORTED_TYPES})
    if unsupported:
        raise BundleError(f"{where}: nirs4all steps of type {unsupported} are not supported")
    if not isinstance(manifest.get("model_step_index"), int):
        raise BundleError(f"{where}: manifest.json has no integer model_step_index")
    weights: dict[int, float] = {}
    if "fold_weights.json" in names:
        raw = read_json(zf, "fold_weights.json", where)
        try:
            weights = {int(k): float(v) for k, v in dict(raw).items()}
        except (TypeError, ValueError):
            raise BundleError(f"{where}: fold_weights.json is not a fold -> weight map") from None
    steps: dict[int, list[tuple[str | None, Any]]] = {}
    for name in names:  # nirs4all applies a step's objects in archive order
        if not name.startswith(f"{ARTIFACTS_DIR}/") or name == f"{ARTIFACTS_DIR}/":
            continue
        match = _STEP_FILE.match(name[len(ARTIFACTS_DIR) + 1 :])
        if match is None:
            raise BundleError(f"{where}: artifact file {name} is not named step_<i>_..joblib")
        obj = _deserialize(read_member(zf, name, where), name, where)
        steps.setdefault(int(match.group(1)), []).append((match.group(2), obj))
    if manifest["model_step_index"] not in steps:
        raise BundleError(f"{where}: no artifact for model step {manifest['model_step_index']}")
    return Nirs4allBundle(manifest, steps, types, weights, path=source.resolve())


def _chain_objects(
    zf: zipfile.ZipFile, names: list[str], chain: dict[str, Any], where: str
) -> dict[str, Any]:
    """artifact id -> object: each id goes to the one file named after its step's class."""
    by_class: dict[str, list[str]] = {}
    for name in names:
        match = (
            _CHAIN_FILE.match(name[len(ARTIFACTS_DIR) + 1 :])
            if name.startswith(f"{ARTIFACTS_DIR}/")
            else None
        )
        if match is not None:
            by_class.setdefault(match.group(1), []).append(name)
    classes: dict[str, str] = {}
    for step in chain.get("steps") or []:
        if isinstance(step, Mapping):
            for aid in step.get("artifact_ids") or []:
                classes[str(aid)] = str(step.get("operator_class"))
    objects: dict[str, Any] = {}
    for aid in artifact_ids(chain):
        candidates = by_class.get(classes.get(aid, "?"), [])
        if len(candidates) != 1:
            raise BundleError(
                f"{where}: artifact {aid} (class {classes.get(aid)!r}) matches "
                f"{len(candidates)} files {candidates}; expected exactly one"
            )
        member = candidates[0]
        data = read_member(zf, member, where)
        prefix = _CHAIN_FILE.match(member[len(ARTIFACTS_DIR) + 1 :]).group(2)  # type: ignore[union-attr]
        if not files.sha256_bytes(data).startswith(prefix):
            raise BundleError(
                f"{where}: artifact {aid} ({member}) fails its SHA-256 check: the bytes do not "
                f"hash to the {prefix} its name records; the bundle was corrupted or tampered with"
            )
        objects[aid] = _deserialize(data, member, where)
    return objects


def load_nirs4all_bundle(
    zf: zipfile.ZipFile, names: list[str], manifest: dict[str, Any], where: str, source: Path
) -> Nirs4allBundle | tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A nirs4all 0.8 bundle, verified as far as its layout allows: layout 1 loaded, layout 2
    as (manifest, chain, objects) for a `bundle.Bundle`."""
    if "bundle_format_version" in manifest:
        return _load_generator_bundle(zf, names, manifest, where, source)
    chain = read_json(zf, CHAIN_NAME, where)
    if not isinstance(chain, dict):
        raise BundleError(f"{where}: chain.json must be an object")
    chain = {**chain, "chain_id": manifest.get("chain_id")}
    try:
        objects = _chain_objects(zf, names, chain, where)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where}: chain.json cannot be replayed: {exc}") from None
    return {**manifest, "n_features": None}, chain, objects
