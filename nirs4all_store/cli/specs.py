"""The pipeline-spec language: templates and JSON/YAML spec files turned into estimators.

A spec is a list of steps, a list of step lists, or {"pipelines": [...]} (or
{"pipeline": [...]}); a step is a class name (see KNOWN_CLASSES, or any importable dotted
path) or {"class": NAME, "params": {...}}.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import yaml

from nirs4all_store.cli.errors import CliError

#: Short class names accepted in pipeline specs (any importable dotted path works too).
KNOWN_CLASSES = {
    "MinMaxScaler": "sklearn.preprocessing.MinMaxScaler",
    "StandardScaler": "sklearn.preprocessing.StandardScaler",
    "RobustScaler": "sklearn.preprocessing.RobustScaler",
    "Normalizer": "sklearn.preprocessing.Normalizer",
    "PCA": "sklearn.decomposition.PCA",
    "SNV": "nirs4all_store.workbench.training.transforms.SNV",
    "MSC": "nirs4all_store.workbench.training.transforms.MSC",
    "SavitzkyGolay": "nirs4all_store.workbench.training.transforms.SavitzkyGolay",
    "Detrend": "nirs4all_store.workbench.training.transforms.Detrend",
    "ALSBaseline": "nirs4all_store.workbench.training.transforms.ALSBaseline",
    "SelectKBest": "sklearn.feature_selection.SelectKBest",
    "PLSRegression": "sklearn.cross_decomposition.PLSRegression",
    "Ridge": "sklearn.linear_model.Ridge",
    "Lasso": "sklearn.linear_model.Lasso",
    "ElasticNet": "sklearn.linear_model.ElasticNet",
    "LinearRegression": "sklearn.linear_model.LinearRegression",
    "SVR": "sklearn.svm.SVR",
    "SVC": "sklearn.svm.SVC",
    "RandomForestRegressor": "sklearn.ensemble.RandomForestRegressor",
    "RandomForestClassifier": "sklearn.ensemble.RandomForestClassifier",
    "LogisticRegression": "sklearn.linear_model.LogisticRegression",
    "LinearDiscriminantAnalysis": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
    "KNeighborsClassifier": "sklearn.neighbors.KNeighborsClassifier",
}

#: The built-in templates `--pipeline NAME` accepts.
TEMPLATE_SPECS: dict[str, list[list[Any]]] = {
    "pls": [["MinMaxScaler", {"class": "PLSRegression", "params": {"n_components": 10}}]],
    "ridge": [["StandardScaler", "Ridge"]],
    # Three preprocessings that change what PLS sees: PLS scales each wavelength itself, so
    # MinMaxScaler and StandardScaler gave the same PLS models (3 of 9 rows were duplicates).
    "demo": [
        [pre, model]
        for pre in (
            "StandardScaler",
            "SNV",
            {"class": "SavitzkyGolay", "params": {"window_length": 11, "deriv": 1}},
        )
        for model in (
            {"class": "PLSRegression", "params": {"n_components": 5}},
            {"class": "PLSRegression", "params": {"n_components": 10}},
            "Ridge",
        )
    ],
    "classify": [
        ["StandardScaler", {"class": "LogisticRegression", "params": {"max_iter": 2000}}],
        ["SNV", {"class": "LogisticRegression", "params": {"max_iter": 2000}}],
    ],
}


def _resolve_class(name: str, where: str) -> type:
    dotted = KNOWN_CLASSES.get(name, name)
    module_name, _, attr = dotted.rpartition(".")
    if not module_name:
        raise CliError(
            f"{where}: unknown step class {name!r}; expected one of {sorted(KNOWN_CLASSES)} "
            "or a dotted path such as sklearn.linear_model.Ridge"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise CliError(f"{where}: cannot import step class {dotted!r}") from None
    if not isinstance(cls, type):
        raise CliError(f"{where}: {dotted!r} is not a class")
    return cls


def _build_step(spec: Any, where: str) -> Any:
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        name = spec.get("class") or spec.get("operator_class")
        params = spec.get("params") or {}
        if not isinstance(name, str) or not isinstance(params, dict):
            raise CliError(f"{where}: expected {{'class': NAME, 'params': {{...}}}}, got {spec!r}")
    else:
        raise CliError(
            f"{where}: a step is a class name or {{'class': ..., 'params': ...}}, got {spec!r}"
        )
    cls = _resolve_class(name, where)
    try:
        return cls(**params)
    except TypeError as exc:
        raise CliError(f"{where}: bad parameters for {name}: {exc}") from None


def build_pipelines(spec: Any, where: str = "pipeline spec") -> list[list[Any]]:
    """Estimators from a spec: steps, a list of step lists, or {"pipelines": [...]}."""
    if isinstance(spec, dict) and "pipelines" in spec:
        spec = spec["pipelines"]
    elif isinstance(spec, dict) and "pipeline" in spec:
        spec = spec["pipeline"]
    if not isinstance(spec, list) or not spec:
        raise CliError(f"{where}: expected a non-empty list of steps or of pipelines, got {spec!r}")
    nested = [spec] if not all(isinstance(p, list) for p in spec) else spec
    return [
        [_build_step(step, f"{where}: pipeline {i} step {j}") for j, step in enumerate(steps)]
        for i, steps in enumerate(nested)
    ]


def _read_spec_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)  # PyYAML is a dependency
        return json.loads(text)
    except (ValueError, Exception) as exc:
        if isinstance(exc, CliError):
            raise
        raise CliError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None


def load_pipeline_spec(value: str) -> list[list[Any]]:
    """A template name (pls, ridge, demo, classify) or a .json/.yaml/.yml spec file."""
    if value in TEMPLATE_SPECS:
        return build_pipelines(TEMPLATE_SPECS[value], f"template {value!r}")
    path = Path(value)
    if not path.is_file():
        raise CliError(
            f"--pipeline {value!r}: not a template ({', '.join(TEMPLATE_SPECS)}) nor a spec file"
        )
    return build_pipelines(_read_spec_file(path), str(path))
