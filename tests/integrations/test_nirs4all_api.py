"""This library's nirs4all adapter held against the reference's method list and signatures.

tests/fixtures/reference_workspace_store_api.json is nirs4all 0.8.11's `WorkspaceStore` and
`ArrayStore` (public members and `_fetch_pl`), dumped with `inspect.signature`. Every
reference method must exist and accept the reference's arguments the way nirs4all passes
them: the same leading positional parameters, every other name accepted as a keyword,
defaults where the reference has them. `NOT_YET` lists the methods still missing: adding
one makes this test fail until it is taken off the list.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from nirs4all_store.integrations.nirs4all_arrays import Nirs4allArrayStore
from nirs4all_store.integrations.nirs4all_store import Nirs4allWorkspaceStore

REFERENCE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "reference_workspace_store_api.json").read_text()
)
CLASSES: dict[str, type[Any]] = {
    "WorkspaceStore": Nirs4allWorkspaceStore,
    "ArrayStore": Nirs4allArrayStore,
}
NOT_YET: dict[str, set[str]] = {"WorkspaceStore": set(), "ArrayStore": set()}
CASES = [
    (cls, name, member)
    for cls, spec in REFERENCE["classes"].items()
    for name, member in sorted(spec["members"].items())
]


def test_missing_methods_are_exactly_the_listed_ones() -> None:
    for cls, spec in REFERENCE["classes"].items():
        missing = {name for name in spec["members"] if not hasattr(CLASSES[cls], name)}
        assert missing == NOT_YET[cls], cls


@pytest.mark.parametrize(("cls", "name", "member"), CASES, ids=[f"{c}.{n}" for c, n, _ in CASES])
def test_method_accepts_the_reference_arguments(cls: str, name: str, member: Any) -> None:
    ours = getattr(CLASSES[cls], name, None)
    if ours is None:
        assert name in NOT_YET[cls]
        pytest.skip(f"{cls}.{name} not implemented yet")
    if member["kind"] == "property":
        assert isinstance(inspect.getattr_static(CLASSES[cls], name), property), name
        return
    params = [p for p in inspect.signature(ours).parameters.values() if p.name != "self"]
    kinds = {p.kind for p in params}
    var_kw = inspect.Parameter.VAR_KEYWORD in kinds
    var_pos = inspect.Parameter.VAR_POSITIONAL in kinds
    by_name = {p.name: p for p in params}
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    reference = [p for p in member["params"] if p["kind"] == "POSITIONAL_OR_KEYWORD"]
    if not var_pos:  # the reference's positional parameters, in its order; ours after them
        names = [p["name"] for p in reference]
        common = min(len(positional), len(names))
        assert positional[:common] == names[:common], name
        for extra in positional[len(names) :]:
            assert by_name[extra].default is not inspect.Parameter.empty, (name, extra)
    for param in member["params"]:
        if param["kind"].startswith("VAR_"):
            continue
        mine = by_name.get(param["name"])
        assert mine is not None or var_kw, f"{name}() does not accept {param['name']!r}"
        if "default" in param and mine is not None:
            assert mine.default is not inspect.Parameter.empty, (
                f"{name}({param['name']}) has no default; the reference's is {param['default']}"
            )


def test_constructor_takes_the_workspace_path() -> None:
    params = list(inspect.signature(Nirs4allWorkspaceStore.__init__).parameters)
    assert params[:2] == ["self", "workspace_path"]


@pytest.mark.parametrize("cls", list(CLASSES.values()), ids=list(CLASSES))
def test_every_public_method_has_a_docstring(cls: type[Any]) -> None:
    undocumented = []
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if name.startswith("_") or not (callable(member) or isinstance(member, property)):
            continue
        target = member.fget if isinstance(member, property) else getattr(cls, name)
        if not inspect.getdoc(target):
            undocumented.append(name)
    assert undocumented == []
