"""The cross-validation splits of a run: any scikit-learn splitter, groups, repeated CV.

`cv` is an int (shuffled `KFold`, `StratifiedKFold` for classification, `GroupKFold` when
groups are given), a scikit-learn splitter object (anything with `split`, such as
`GroupKFold(5)`, `RepeatedKFold(...)`, `LeaveOneGroupOut()`), or an iterable of
(train indices, val indices) pairs. The splits are computed once per dataset in the parent
process, so every pipeline of a run sees the same folds and the workers only fit.

`parse_cv` turns the CLI's text (`5`, `kfold:5`, `stratified:5`, `group:5`,
`stratified-group:5`, `repeated:5x3`, `loo`, `logo`) into a splitter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["describe_cv", "make_splits", "parse_cv", "resolve_groups"]


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None
    if value < 2:
        raise ValueError(f"{what} must be >= 2, got {value}")
    return value


def parse_cv(text: str, random_state: int | None = 0) -> Any:
    """The splitter a CLI `--cv` value names (see the module docstring)."""
    from sklearn import model_selection as ms

    kind, _, arg = str(text).strip().partition(":")
    kind = kind.lower()
    if kind.isdigit() and not arg:
        return int(kind)  # run() checks it (cv must be an int >= 2)
    if kind == "loo":
        return ms.LeaveOneOut()
    if kind == "logo":
        return ms.LeaveOneGroupOut()
    if kind == "repeated":
        k, _, r = arg.partition("x")
        return ms.RepeatedKFold(
            n_splits=_positive_int(k, "folds"),
            n_repeats=_positive_int(r or "2", "repeats"),
            random_state=random_state,
        )
    classes = {
        "kfold": (ms.KFold, True),
        "stratified": (ms.StratifiedKFold, True),
        "group": (ms.GroupKFold, False),
        "stratified-group": (ms.StratifiedGroupKFold, True),
    }
    if kind not in classes:
        raise ValueError(
            f"unknown --cv {text!r}; expected K, kfold:K, stratified:K, group:K, "
            "stratified-group:K, repeated:KxR, loo or logo"
        )
    cls, shuffles = classes[kind]
    n = _positive_int(arg, f"--cv {kind}:K")
    return cls(n_splits=n, shuffle=True, random_state=random_state) if shuffles else cls(n)


def default_splitter(task: str, cv: int, random_state: int | None, grouped: bool) -> Any:
    """Shuffled (stratified for classification) K folds; `GroupKFold` when grouped."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    if grouped:
        return GroupKFold(n_splits=cv)
    cls = StratifiedKFold if task == "classification" else KFold
    return cls(n_splits=cv, shuffle=True, random_state=random_state)


def check_cv_argument(cv: Any) -> None:
    """Type check of `cv` before anything runs."""
    if isinstance(cv, bool):
        raise ValueError(f"cv must be an int >= 2, a splitter or an iterable of splits, got {cv!r}")
    if isinstance(cv, int):
        if cv < 2:
            raise ValueError(f"cv must be an int >= 2 (number of folds), got {cv!r}")
        return
    if (hasattr(cv, "split") and hasattr(cv, "get_n_splits")) or (
        isinstance(cv, Iterable) and not isinstance(cv, (str, bytes))
    ):
        return
    raise ValueError(
        "cv must be an int >= 2, a scikit-learn splitter (e.g. GroupKFold(5)) or an iterable "
        f"of (train, val) index pairs; got {cv!r}"
    )


def resolve_groups(groups: Any, metadata: dict[str, np.ndarray] | None, n: int, name: str) -> Any:
    """The groups array of one dataset: an array of length `n`, or a metadata column name."""
    if groups is None:
        return None
    if isinstance(groups, str):
        if not metadata or groups not in metadata:
            have = sorted(metadata or {})
            raise ValueError(
                f"groups={groups!r}: dataset {name!r} has no metadata column of that name "
                f"(columns: {have or 'none'}; a nirs4all folder's metadata is Mcal.csv)"
            )
        return np.asarray(metadata[groups])
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"groups must be 1-D with one value per training sample of dataset {name!r} ({n}), "
            f"got shape {arr.shape}"
        )
    return arr


def make_splits(
    cv: Any, task: str, X: np.ndarray, y: np.ndarray, groups: Any, random_state: int | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, val) index pairs of one dataset, checked."""
    n = len(y)
    if isinstance(cv, int):
        if cv > n:
            raise ValueError(f"cv={cv} folds but the dataset has only {n} training samples")
        cv = default_splitter(task, cv, random_state, groups is not None)
    raw = cv.split(X, y, groups) if hasattr(cv, "split") else cv
    splits = []
    for k, pair in enumerate(raw):
        try:
            tr, va = (np.asarray(part, dtype=np.int64).reshape(-1) for part in pair)
        except (TypeError, ValueError):
            raise ValueError(f"split {k} is not a (train indices, val indices) pair") from None
        if len(tr) == 0 or len(va) == 0:
            raise ValueError(f"split {k} has an empty train or val part")
        if min(tr.min(), va.min()) < 0 or max(tr.max(), va.max()) >= n:
            raise ValueError(f"split {k} has indices outside 0..{n - 1}")
        splits.append((tr, va))
    if not splits:
        raise ValueError("cv produced no split")
    return splits


def describe_cv(cv: Any, groups: Any) -> dict[str, Any]:
    """What the run config records about the splitting."""
    if isinstance(cv, int):
        splitter = f"{cv} folds (KFold/StratifiedKFold shuffled, GroupKFold with groups)"
    elif hasattr(cv, "split"):
        from sklearn import config_context

        with config_context(print_changed_only=False):
            splitter = repr(cv)
    else:
        splitter = "explicit splits"
    if groups is None:
        group_text = None
    elif isinstance(groups, str):
        group_text = f"metadata column {groups!r}"
    else:
        group_text = "array"
    return {"splitter": splitter, "groups": group_text}
