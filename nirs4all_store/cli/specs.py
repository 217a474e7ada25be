"""The pipeline-spec language: templates and JSON/YAML spec files turned into estimators.

A spec is a list of steps, a list of step lists, or {"pipelines": [...]} (or
{"pipeline": [...]}); a step is a class name (one of `workbench.library.STEP_CLASSES`, or
any importable dotted path) or {"class": NAME, "params": {...}, "grid": {...}}: the same
language as the runnable templates of a `PipelineLibrary` (one builder, one class table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nirs4all_store.cli.errors import CliError

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


def build_pipelines(spec: Any, where: str = "pipeline spec") -> list[list[Any]]:
    """Estimators from a spec: steps, a list of step lists, or {"pipelines": [...]}; a step
    may carry a "grid" (expanded by `run()`, one pipeline per point, its choices recorded in
    `generator_choices`). The library's builder, so spec files and templates agree."""
    from nirs4all_store.workbench.library import pipelines_from_config

    try:
        return pipelines_from_config(spec, where)
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None


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
