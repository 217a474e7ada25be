"""Chain replay: predict on new spectra with the fitted objects a chain references.

One pure core, `replay_steps(chain, load, X, ...)`, serves both the workspace
(`WorkspaceStore.replay_chain`, artifacts loaded from the store) and portable bundles
(`nirs4all_store.bundle`, artifacts loaded from the ZIP), so both give the same numbers.

Conventions (those of nirs4all workspaces):
- `steps` is a list of step descriptions (dicts with `step_idx`, `operator_class`,
  `stateless`, ... ); a step's index is its `step_idx`, else its position.
- `shared_artifacts` maps a step index *as a string* (JSON keys) to one artifact id or a
  list of ids applied in order; these are fitted transformers shared by every fold.
- `fold_artifacts` maps fold ids ("fold_0", "fold_1", ..., "fold_final" or legacy
  "final") to the model fitted on that fold (or a list: per-fold transformers then the
  model, applied in order). A final fold alone predicts; otherwise folds are averaged.

Loading an artifact unpickles it, which executes code: replay only trusted workspaces.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from nirs4all_store.workbench.axis import check_axis, recorded_axis

if TYPE_CHECKING:
    from nirs4all_store.store import WorkspaceStore

FINAL_FOLD_IDS = ("fold_final", "final")


def is_classification(task_type: Any) -> bool:
    """nirs4all task types: 'classification', 'binary_classification', 'multiclass_...'."""
    return isinstance(task_type, str) and "classification" in task_type.lower()


def _fold_sort_key(fold_id: str) -> tuple[int, int, str]:
    match = re.search(r"(\d+)$", fold_id)
    return (0, int(match.group(1)), fold_id) if match else (1, 0, fold_id)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def model_step_index(chain: Mapping[str, Any]) -> int:
    """The model step's index; RuntimeError when the chain has none."""
    value = chain.get("model_step_idx")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise RuntimeError(
            f"chain {chain.get('chain_id', '?')} has no model step (model_step_idx={value!r})"
        )
    return int(value)


def preprocessing_plan(chain: Mapping[str, Any]) -> list[tuple[int, list[str]]]:
    """(step index, artifact ids) of every step before the model, in order.

    A step without artifact is kept with an empty list (it passes X through) unless it is
    explicitly marked `stateless: false`: then its fitted state is missing and replaying
    without it would silently give wrong numbers, so a RuntimeError is raised.
    """
    model_idx = model_step_index(chain)
    shared = {str(k): _as_list(v) for k, v in (chain.get("shared_artifacts") or {}).items()}
    described: dict[int, Any] = {}
    for position, step in enumerate(chain.get("steps") or []):
        idx = step.get("step_idx", position) if isinstance(step, Mapping) else position
        try:
            described[int(idx)] = step
        except (TypeError, ValueError):
            raise RuntimeError(
                f"chain step {position} has a non-integer step_idx {idx!r}"
            ) from None
    indices = set(described)
    for key in shared:
        try:
            indices.add(int(key))
        except ValueError:
            raise RuntimeError(
                f"shared_artifacts key {key!r} is not a step index (expected e.g. '0', '1')"
            ) from None
    plan: list[tuple[int, list[str]]] = []
    for idx in sorted(i for i in indices if i < model_idx):
        ids = shared.get(str(idx), [])
        step = described.get(idx)
        if not ids and isinstance(step, Mapping) and step.get("stateless") is False:
            name = step.get("operator_class", "?")
            raise RuntimeError(
                f"chain step {idx} ({name}) is fitted (stateless=false) but has no artifact in "
                "shared_artifacts: the chain cannot be replayed"
            )
        plan.append((idx, ids))
    return plan


def model_plan(chain: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(fold id, artifact ids) of the models that predict: the final fold alone, else all."""
    folds = {str(k): _as_list(v) for k, v in (chain.get("fold_artifacts") or {}).items()}
    folds = {k: v for k, v in folds.items() if v}
    for final in FINAL_FOLD_IDS:
        if final in folds:
            return [(final, folds[final])]
    if folds:
        return [(k, folds[k]) for k in sorted(folds, key=_fold_sort_key)]
    # fold_strategy "shared": one model stored under the model step's index.
    model_idx = model_step_index(chain)
    shared = (chain.get("shared_artifacts") or {}).get(str(model_idx))
    if shared:
        return [("shared", _as_list(shared))]
    raise RuntimeError(
        f"chain {chain.get('chain_id', '?')} has no model artifacts (fold_artifacts is empty "
        f"and no shared artifact at model step {model_idx}): nothing can predict"
    )


def artifact_ids(chain: Mapping[str, Any]) -> list[str]:
    """Every artifact id replay may load, in first-use order, without duplicates."""
    ids: list[str] = []
    for _, step_ids in preprocessing_plan(chain):
        ids.extend(step_ids)
    for _, fold_ids in model_plan(chain):
        ids.extend(fold_ids)
    return list(dict.fromkeys(ids))


def _accepts_wavelengths(method: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "wavelengths" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _transform(obj: Any, X: np.ndarray, wavelengths: np.ndarray | None, where: str) -> np.ndarray:
    method = getattr(obj, "transform", None)
    if method is None:
        raise RuntimeError(f"{where}: {type(obj).__name__} has no transform() method")
    if wavelengths is not None and _accepts_wavelengths(method):
        out = method(X, wavelengths=wavelengths)
    else:
        out = method(X)
    return np.asarray(out)


def check_input(X: Any, wavelengths: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """X as a 2-D float array and the wavelengths as a 1-D one (one per column), or errors."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"X must be a numeric 2-D array (n_samples, n_features): {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    wl = None
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64)
        if wl.ndim != 1 or wl.shape[0] != arr.shape[1]:
            raise ValueError(
                f"wavelengths must be 1-D with one value per feature ({arr.shape[1]}), "
                f"got shape {wl.shape}"
            )
    return arr, wl


def expected_features(obj: Any) -> int | None:
    """`n_features_in_` of a fitted object (sklearn estimators and Pipelines), if known."""
    value = getattr(obj, "n_features_in_", None)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def check_fitted_shape(
    chain_id: Any,
    first: list[Any],
    n_given: int,
    wavelengths: np.ndarray | None,
    n_features: int | None,
    axis: Any,
) -> None:
    """SpectralAxisError unless X (`n_given` columns on `wavelengths`) fits the chain: the width
    of the first object applied (else `n_features`), the `wavelengths_` one of the first
    objects records (else `axis`, a bundle manifest's)."""
    expected = expected_features(first[0]) if first else None
    fitted_axis = next((a for a in map(recorded_axis, first) if a is not None), None)
    if fitted_axis is None and axis is not None:
        fitted_axis = np.asarray(axis, dtype=np.float64).reshape(-1)
    n_expected = expected if expected is not None else n_features
    check_axis(chain_id, n_given, wavelengths, n_expected, fitted_axis)


def replay_steps(
    chain: Mapping[str, Any],
    load: Callable[[str], Any],
    X: Any,
    wavelengths: Any = None,
    proba: bool = False,
    n_features: int | None = None,
    axis: Any = None,
) -> np.ndarray:
    """Predict with a chain description, loading fitted objects through `load(artifact_id)`.

    Returns shape (n_samples,) for single-target regression and for class labels,
    (n_samples, n_targets) for multi-target regression, and (n_samples, n_classes) with
    `proba=True`. `n_features` is a fallback for objects that do not record
    `n_features_in_`; `axis` one for the wavelength axis (a bundle's manifest) when the
    objects do not record `wavelengths_`. SpectralAxisError (a ValueError) when X has another
    width, or `wavelengths` differ from the recorded axis (see `workbench.axis`). Each
    artifact is loaded once per call.
    """
    chain_id = chain.get("chain_id", "?")
    X, wl = check_input(X, wavelengths)
    pre = preprocessing_plan(chain)
    models = model_plan(chain)
    classification = is_classification(chain.get("task_type"))
    if proba and not classification:
        raise ValueError(
            f"proba=True needs a classification chain; chain {chain_id} has task_type "
            f"{chain.get('task_type')!r}"
        )

    cache: dict[str, Any] = {}

    def get(artifact_id: str) -> Any:
        if artifact_id not in cache:
            cache[artifact_id] = load(artifact_id)
        return cache[artifact_id]

    first_ids = [ids[0] for _, ids in pre if ids] + [ids[0] for _, ids in models]
    check_fitted_shape(chain_id, [get(i) for i in first_ids], X.shape[1], wl, n_features, axis)

    for idx, ids in pre:
        for artifact_id in ids:
            X = _transform(get(artifact_id), X, wl, f"chain {chain_id} step {idx}")
        if X.ndim != 2 or (wl is not None and X.shape[1] != wl.shape[0]):
            wl = None  # the features no longer correspond to wavelengths

    outputs: list[np.ndarray] = []
    classes: np.ndarray | None = None
    for fold_id, ids in models:
        Xf = X
        for artifact_id in ids[:-1]:
            Xf = _transform(get(artifact_id), Xf, wl, f"chain {chain_id} fold {fold_id}")
        model = get(ids[-1])
        where = f"chain {chain_id} fold {fold_id} ({type(model).__name__})"
        if classification and (proba or len(models) > 1 or hasattr(model, "predict_proba")):
            if not hasattr(model, "predict_proba"):
                raise RuntimeError(f"{where} has no predict_proba(): folds cannot be averaged")
            fold_classes = np.asarray(model.classes_)
            if classes is None:
                classes = fold_classes
            elif not np.array_equal(classes, fold_classes):
                raise RuntimeError(
                    f"{where} has classes {fold_classes.tolist()}, other folds "
                    f"{classes.tolist()}: probabilities cannot be averaged"
                )
            outputs.append(np.asarray(model.predict_proba(Xf), dtype=np.float64))
        else:
            outputs.append(np.asarray(model.predict(Xf)))

    stacked = np.stack(outputs)
    if classification and classes is not None:
        mean_proba = stacked.mean(axis=0)
        return mean_proba if proba else classes[np.argmax(mean_proba, axis=1)]
    if classification:  # one model without predict_proba: its labels as they are
        return stacked[0]
    result = stacked.astype(np.float64, copy=False).mean(axis=0)
    if result.ndim == 2 and result.shape[1] == 1:
        result = result[:, 0]
    return result


def replay_chain(
    store: WorkspaceStore,
    chain_id: str,
    X: Any,
    wavelengths: Any = None,
    proba: bool = False,
) -> np.ndarray:
    """Predict on new spectra `X` with stored chain `chain_id` (see `replay_steps`).

    KeyError for an unknown chain; RuntimeError for a chain without model artifacts;
    ValueError naming expected and given feature counts when X has the wrong width.
    """
    from nirs4all_store.validation import check_id

    check_id("chain_id", chain_id)
    chain = store.get_chain(chain_id)
    if chain is None:
        raise KeyError(f"unknown chain_id {chain_id!r}")
    return replay_steps(chain, store.load_artifact, X, wavelengths=wavelengths, proba=proba)
