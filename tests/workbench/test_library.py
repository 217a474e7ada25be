"""PipelineLibrary: templates in the workspace database (revision 0003)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import BACKENDS

from nirs4all_store import WorkspaceStore
from nirs4all_store.db import engine as engines
from nirs4all_store.db import migrate
from nirs4all_store.workbench.library import PipelineLibrary

CONFIG = {
    "pipeline": [
        {"class": "StandardScaler"},
        {"model": {"class": "PLSRegression", "n_components": 8}},
    ]
}


@pytest.fixture
def library(store: WorkspaceStore) -> Iterator[PipelineLibrary]:
    with PipelineLibrary(store) as lib:
        yield lib


def test_save_load_round_trip_and_metadata(library: PipelineLibrary) -> None:
    template_id = library.save_template(
        CONFIG,
        "pls-baseline",
        category="regression",
        tags=["pls", "baseline"],
        description="PLS after scaling",
        metrics={"rmse": 0.42},
    )
    assert library.load_template("pls-baseline") == CONFIG
    assert library.load_template("pls-baseline", category="regression") == CONFIG
    meta = library.get_template_metadata("pls-baseline")
    assert meta["template_id"] == template_id
    assert meta["name"] == "pls-baseline"
    assert meta["category"] == "regression"
    assert meta["tags"] == ["pls", "baseline"]
    assert meta["description"] == "PLS after scaling"
    assert meta["metrics"] == {"rmse": 0.42}
    assert meta["created_at"] == meta["updated_at"]
    assert "config" not in meta
    assert "pls-baseline" in library and "other" not in library


def test_existing_name_needs_overwrite(library: PipelineLibrary) -> None:
    first = library.save_template(CONFIG, "t1", tags=["a"])
    with pytest.raises(ValueError, match="'t1' already exists"):
        library.save_template({"other": 1}, "t1")
    assert library.load_template("t1") == CONFIG
    second = library.save_template({"other": 1}, "t1", category="new", overwrite=True)
    assert second == first
    assert library.load_template("t1") == {"other": 1}
    meta = library.get_template_metadata("t1")
    assert meta["category"] == "new" and meta["tags"] == []
    assert meta["updated_at"] >= meta["created_at"]


def test_unknown_names_and_wrong_category_are_key_errors(library: PipelineLibrary) -> None:
    library.save_template(CONFIG, "t1", category="regression")
    with pytest.raises(KeyError, match="unknown template 'nope'"):
        library.load_template("nope")
    with pytest.raises(KeyError, match="in category 'regression', not 'classification'"):
        library.load_template("t1", category="classification")
    with pytest.raises(KeyError, match="unknown template 'nope'"):
        library.get_template_metadata("nope")
    with pytest.raises(KeyError, match="unknown template 'nope'"):
        library.delete_template("nope")


@pytest.mark.parametrize("bad", ["", " lead", "a/b", "../x", "a..b", "x" * 129, "é", None, 3])
def test_names_are_validated(library: PipelineLibrary, bad: object) -> None:
    with pytest.raises(ValueError, match="name must be"):
        library.save_template(CONFIG, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="category must be"):
        library.save_template(CONFIG, "ok", category=bad)  # type: ignore[arg-type]
    assert library.list_templates() == []


def test_other_inputs_are_validated(library: PipelineLibrary) -> None:
    with pytest.raises(TypeError, match="tags must be a list"):
        library.save_template(CONFIG, "t", tags="pls")
    with pytest.raises(ValueError, match="every tag must be a non-empty string"):
        library.save_template(CONFIG, "t", tags=["ok", ""])
    with pytest.raises(TypeError, match="config is not JSON-serialisable"):
        library.save_template({"obj": object()}, "t")
    with pytest.raises(ValueError, match="config must be"):
        library.save_template(None, "t")
    with pytest.raises(TypeError, match="metrics must be a dict"):
        library.save_template(CONFIG, "t", metrics=[0.1])  # type: ignore[arg-type]


def test_list_by_category_and_all_tags_then_delete(library: PipelineLibrary) -> None:
    library.save_template(CONFIG, "b-pls", category="regression", tags=["pls", "nir"])
    library.save_template(CONFIG, "a-ridge", category="regression", tags=["linear", "nir"])
    library.save_template(CONFIG, "svm", category="classification", tags=["nir", "kernel"])
    assert [t["name"] for t in library.list_templates()] == ["svm", "a-ridge", "b-pls"]
    assert [t["name"] for t in library.list_templates(category="regression")] == [
        "a-ridge",
        "b-pls",
    ]
    assert [t["name"] for t in library.list_templates(tags=["nir"])] == ["svm", "a-ridge", "b-pls"]
    assert [t["name"] for t in library.list_templates(tags=["nir", "pls"])] == ["b-pls"]
    assert library.list_templates(category="regression", tags=["kernel"]) == []
    library.delete_template("b-pls")
    assert [t["name"] for t in library.list_templates(category="regression")] == ["a-ridge"]
    with pytest.raises(KeyError):
        library.load_template("b-pls")


@pytest.mark.skipif("duckdb" not in BACKENDS, reason="DuckDB backend not selected")
def test_path_library_beside_an_open_store_in_one_process(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    with WorkspaceStore(workspace) as store:
        run_id = store.begin_run("open")
        with PipelineLibrary(workspace) as library:
            library.save_template(CONFIG, "t1")
            assert store.get_run(run_id) is not None  # the store keeps working
            with PipelineLibrary(store) as shared:
                assert shared.load_template("t1") == CONFIG
                shared.save_template({"x": 1}, "t2")
            assert [t["name"] for t in library.list_templates()] == ["t1", "t2"]
        store.begin_run("still open")
    with PipelineLibrary(workspace) as reopened:
        assert reopened.load_template("t2") == {"x": 1}


def test_constructor_arguments_are_checked(store: WorkspaceStore) -> None:
    with pytest.raises(TypeError, match="workspace must be a path or a WorkspaceStore"):
        PipelineLibrary(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="url= only with a workspace path"):
        PipelineLibrary(store, url="sqlite://")


@pytest.mark.parametrize("kind", [b for b in ("duckdb", "sqlite") if b in BACKENDS])
def test_workspace_at_0002_upgrades_to_0003_with_data_kept(tmp_path: Path, kind: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    url = (
        engines.duckdb_url(workspace / engines.DB_FILENAME)
        if kind == "duckdb"
        else f"sqlite:///{tmp_path / 's.db'}"
    )
    engine = engines.create_store_engine(url)
    try:
        migrate.upgrade(engine, "0002")
        with engine.begin() as conn:
            assert migrate.current_revision(conn) == "0002"
            assert not sa.inspect(conn).has_table("pipeline_templates")
            conn.execute(
                sa.text(
                    "INSERT INTO runs (run_id, name, status, created_at) "
                    "VALUES ('run-0002', 'before 0003', 'completed', '2026-01-02 03:04:05')"
                )
            )
    finally:
        engine.dispose()

    with WorkspaceStore(workspace, url=None if kind == "duckdb" else url) as store:
        run = store.get_run("run-0002")
        assert run is not None and run["name"] == "before 0003" and run["status"] == "completed"
        with store.transaction() as session:
            assert migrate.current_revision(session.connection()) == migrate.HEAD_REVISION
        with PipelineLibrary(store) as library:
            library.save_template(CONFIG, "after-upgrade")
            assert library.load_template("after-upgrade") == CONFIG
    if kind == "duckdb":
        assert (workspace / f"{engines.DB_FILENAME}.bak-0002").is_file()

    # And back: downgrading to 0002 drops only the templates table.
    engine = engines.create_store_engine(url)
    try:
        migrate.downgrade(engine, "0002")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("pipeline_templates")
            assert (
                conn.execute(sa.text("SELECT name FROM runs WHERE run_id = 'run-0002'")).scalar()
                == "before 0003"
            )
    finally:
        engine.dispose()
