"""`PipelineLibrary`: reusable pipeline templates kept in the workspace database.

Templates are structured data (a config plus category, tags, description, metrics), so
they live in the `pipeline_templates` table (revision 0003) next to the runs they came
from: one backup, transactional writes, and every backend the store supports.

A library opened on a path opens a `WorkspaceStore` of its own; DuckDB shares one
database instance per file inside a process, so it works beside an open store. Handing
in an open `WorkspaceStore` reuses its engine (the only way with an `Engine`-backed store).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nirs4all_store.repositories import TemplateRepository
from nirs4all_store.repositories.templates import METADATA_COLUMNS
from nirs4all_store.store import WorkspaceStore
from nirs4all_store.types import utcnow
from nirs4all_store.validation import check_json

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,127}$")


def check_name(field: str, value: Any) -> str:
    """Names are 1-128 letters, digits, space, `_`, `-`, `.`, starting with a letter/digit."""
    if (
        not isinstance(value, str)
        or not NAME_PATTERN.match(value)
        or ".." in value
        or value != value.strip()
    ):
        raise ValueError(
            f"{field} must be 1-128 characters of letters, digits, space, '_', '-' or '.', "
            f"starting with a letter or digit, without '..' or surrounding spaces; got {value!r}"
        )
    return value


def _check_tags(tags: Any) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise TypeError(f"tags must be a list of strings, got {type(tags).__name__}: {tags!r}")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"every tag must be a non-empty string, got {tag!r}")
        if tag not in clean:
            clean.append(tag)
    return clean


class PipelineLibrary:
    """Save, find and load pipeline templates of a workspace.

    `PipelineLibrary("workspace")` (optionally `url=` as for `WorkspaceStore`) or
    `PipelineLibrary(store)` with an open store. Use as a context manager or `close()`.
    """

    def __init__(
        self, workspace: str | os.PathLike[str] | WorkspaceStore, *, url: Any = None
    ) -> None:
        if isinstance(workspace, WorkspaceStore):
            if url is not None:
                raise ValueError(
                    "give url= only with a workspace path, not with an open WorkspaceStore"
                )
            self.store = workspace
            self._owns_store = False
        elif isinstance(workspace, (str, os.PathLike)):
            # NullPool: the library does not keep the file locked between its calls.
            self.store = WorkspaceStore(Path(workspace), url=url, hold_lock=False)
            self._owns_store = True
        else:
            raise TypeError(
                f"workspace must be a path or a WorkspaceStore, got {type(workspace).__name__}"
            )

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> PipelineLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PipelineLibrary({self.store!r})"

    # -- writes ----------------------------------------------------------------------------
    def save_template(
        self,
        config: Any,
        name: str,
        category: str = "general",
        tags: Iterable[str] = (),
        description: str = "",
        metrics: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> str:
        """Store `config` under `name`; returns the template id.

        ValueError when the name exists and `overwrite` is False. With `overwrite=True`
        the template keeps its id and creation time; everything else is replaced.
        """
        check_name("name", name)
        check_name("category", category)
        if config is None:
            raise ValueError("config must be a JSON-serialisable pipeline config, got None")
        clean_config = check_json("config", config)
        clean_tags = _check_tags(tags)
        if not isinstance(description, str):
            raise TypeError(f"description must be a string, got {type(description).__name__}")
        if metrics is not None and not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
        clean_metrics = check_json("metrics", dict(metrics)) if metrics is not None else None
        values = {
            "category": category,
            "tags": clean_tags,
            "description": description,
            "config": clean_config,
            "metrics": clean_metrics,
            "updated_at": utcnow(),
        }
        with self.store.transaction() as s:
            templates = TemplateRepository(s)
            existing = templates.id_of(name)
            if existing is None:
                return templates.insert(name, values)
            if not overwrite:
                raise ValueError(
                    f"template {name!r} already exists; pass overwrite=True to replace it"
                )
            templates.update(existing, values)
            return existing

    def delete_template(self, name: str) -> None:
        """Remove a template; KeyError when there is none of that name."""
        check_name("name", name)
        with self.store.transaction() as s:
            if not TemplateRepository(s).delete(name):
                raise KeyError(f"unknown template {name!r}")

    # -- reads -----------------------------------------------------------------------------
    def _row(self, name: str, category: str | None, columns: Iterable[str]) -> dict[str, Any]:
        check_name("name", name)
        if category is not None:
            check_name("category", category)
        columns = list(columns)
        with self.store.transaction() as s:
            found = TemplateRepository(s).get(name, columns)
        if found is None:
            raise KeyError(f"unknown template {name!r}")
        actual = found["category"] if "category" in columns else found.pop("category")
        if category is not None and actual != category:
            raise KeyError(f"template {name!r} is in category {actual!r}, not {category!r}")
        return found

    def load_template(self, name: str, category: str | None = None) -> Any:
        """The template's config; KeyError for an unknown name (or one in another category)."""
        return self._row(name, category, ["config"])["config"]

    def get_template_metadata(self, name: str) -> dict[str, Any]:
        """Everything but the config: name, category, tags, description, metrics, times, id."""
        return self._row(name, None, METADATA_COLUMNS)

    def list_templates(
        self, category: str | None = None, tags: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Metadata of the templates in `category` having *all* `tags`, by category and name."""
        if category is not None:
            check_name("category", category)
        wanted = set(_check_tags(tags)) if tags is not None else set()
        with self.store.transaction() as s:
            rows = TemplateRepository(s).list(category)
        # Tags are a JSON list: matched here so the filter is the same on every backend.
        return [r for r in rows if wanted.issubset(r["tags"] or [])]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        with self.store.transaction() as s:
            return TemplateRepository(s).id_of(name) is not None


# -- runnable templates -------------------------------------------------------------------

#: Short class names a template config or a CLI spec file may use (any importable dotted
#: path works too): the one table of both.
STEP_CLASSES = {
    "MinMaxScaler": "sklearn.preprocessing.MinMaxScaler",
    "StandardScaler": "sklearn.preprocessing.StandardScaler",
    "RobustScaler": "sklearn.preprocessing.RobustScaler",
    "Normalizer": "sklearn.preprocessing.Normalizer",
    "PCA": "sklearn.decomposition.PCA",
    "SelectKBest": "sklearn.feature_selection.SelectKBest",
    "PLSRegression": "sklearn.cross_decomposition.PLSRegression",
    "Ridge": "sklearn.linear_model.Ridge",
    "Lasso": "sklearn.linear_model.Lasso",
    "ElasticNet": "sklearn.linear_model.ElasticNet",
    "LinearRegression": "sklearn.linear_model.LinearRegression",
    "LogisticRegression": "sklearn.linear_model.LogisticRegression",
    "SVR": "sklearn.svm.SVR",
    "SVC": "sklearn.svm.SVC",
    "RandomForestRegressor": "sklearn.ensemble.RandomForestRegressor",
    "RandomForestClassifier": "sklearn.ensemble.RandomForestClassifier",
    "LinearDiscriminantAnalysis": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
    "KNeighborsClassifier": "sklearn.neighbors.KNeighborsClassifier",
    **{
        name: f"nirs4all_store.workbench.training.transforms.{name}"
        for name in ("SNV", "MSC", "SavitzkyGolay", "Detrend", "ALSBaseline")
    },
}


def _step_from_config(spec: Any, where: str) -> Any:
    import importlib

    from nirs4all_store.workbench.training.grid import Grid

    if isinstance(spec, str):
        spec = {"class": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: a step is a class name or {{'class': NAME, ...}}, got {spec!r}")
    name = spec.get("class") or spec.get("operator_class")
    params = spec.get("params") or {}
    if not isinstance(name, str) or not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected {{'class': NAME, 'params': {{...}}}}, got {spec!r}")
    dotted = STEP_CLASSES.get(name, name)
    module_name, _, attr = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if not isinstance(cls, type):
        raise ValueError(
            f"{where}: unknown step class {name!r}; expected one of {sorted(STEP_CLASSES)} or a "
            "dotted path such as sklearn.linear_model.Ridge"
        )
    try:
        step = cls(**params)
    except TypeError as exc:
        raise ValueError(f"{where}: bad parameters for {name}: {exc}") from None
    grid = spec.get("grid")
    return Grid(step, grid) if grid is not None else step


def pipelines_from_config(config: Any, where: str = "template") -> list[list[Any]]:
    """Estimators from a template config: a list of steps, a list of step lists, or
    {"pipelines": [...]}; a step is a class name or {"class", "params", "grid"} (a grid per
    step, scikit-learn `ParameterGrid` semantics). `operator_class` is accepted for `class`,
    so the step descriptions `run()` records build again."""
    if isinstance(config, Mapping):
        config = config.get("pipelines", config.get("pipeline"))
    if not isinstance(config, list) or not config:
        raise ValueError(f"{where}: expected a non-empty list of steps or of pipelines")
    nested = config if all(isinstance(p, list) for p in config) else [config]
    return [
        [_step_from_config(s, f"{where}: pipeline {i} step {j}") for j, s in enumerate(steps)]
        for i, steps in enumerate(nested)
    ]


def template_pipelines(library: PipelineLibrary, name: str) -> list[list[Any]]:
    """The pipelines of template `name` (KeyError naming the known templates when unknown)."""
    if name not in library:
        known = [t["name"] for t in library.list_templates()]
        raise KeyError(f"unknown pipeline template {name!r}; the workspace has {known or 'none'}")
    return pipelines_from_config(library.load_template(name), f"template {name!r}")
