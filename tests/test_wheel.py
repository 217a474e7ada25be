"""The built wheel works on its own: migrations ship inside the package and run from it.

The editable install used by every other test reads `migrations/` from the checkout, so a
packaging mistake (a revision missing from the wheel, `script.py.mako` left out) would go
unnoticed there. This test builds the wheel, installs it with its declared dependencies in
a fresh venv outside the checkout and migrates a DuckDB file from a directory outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nirs4all_store.db.migrate import head_revision

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "nirs4all_store"
# Guards against a hung subprocess only; nothing asserts on duration.
BUILD_TIMEOUT_S = 900
INSTALL_TIMEOUT_S = 1800
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "workspace",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.duckdb",
    "*.duckdb.wal",
)

# Runs in the installed venv with cwd outside the checkout; argv[1] is a fresh DuckDB path.
# Contract (keep it when swapping the body, e.g. for `WorkspaceStore(path)`): print one JSON
# line with "version" (revision in the version table), "migrations_dir" (the Alembic folder
# used) and "package_file" (the imported nirs4all_store module file).
SNIPPET = """
import json, sys
from pathlib import Path

import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.db.migrate import VERSION_TABLE, migrations_dir

path = Path(sys.argv[1])
with WorkspaceStore(path.parent) as store:
    run_id = store.begin_run("from the wheel")
    assert store.get_run(run_id)["name"] == "from the wheel"
    with store.engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
print(json.dumps({
    "version": version,
    "migrations_dir": str(migrations_dir()),
    "package_file": sys.modules["nirs4all_store.db.migrate"].__file__,
}))
"""


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would let the checkout leak into the venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        cwd=cwd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed (exit {result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build leaves no debris in the repo)."""
    pytest.importorskip("build", reason="building the wheel needs the dev extra: .[test,dev]")
    work = tmp_path_factory.mktemp("wheel-build")
    source = work / "src"
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_SOURCE)
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        cwd=work,
        timeout=BUILD_TIMEOUT_S,
    )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {wheels}"
    return wheels[0]


def test_wheel_ships_the_migrations_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{PACKAGE}/db/migrations/env.py",
        f"{PACKAGE}/db/migrations/script.py.mako",
        f"{PACKAGE}/db/migrations/versions/0001_initial_schema.py",
    }
    expected |= {
        f"{PACKAGE}/db/migrations/versions/{p.name}"
        for p in (REPO_ROOT / PACKAGE / "db" / "migrations" / "versions").glob("*.py")
    }
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    strays = sorted(n for n in names if n.split("/")[0] in ("migrations", "tests", "benchmarks"))
    assert not strays, f"files outside the package leaked into the wheel: {strays}"


def test_wheel_ships_py_typed_license_and_metadata(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert f"{PACKAGE}/py.typed" in names  # type checkers use the package's hints
    info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    assert any(n.startswith(f"{info}/") and n.endswith("LICENSE") for n in names), sorted(names)
    metadata = archive.read(f"{info}/METADATA").decode("utf-8")
    assert "License-Expression: MIT" in metadata and "Project-URL: Homepage" in metadata
    assert "Provides-Extra: dev" in metadata and "Requires-Dist: pyyaml" in metadata
    # the dev tools are not in the test extra (nor in a user's install)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert 'Requires-Dist: ruff>=0.5; extra == "dev"' in requires
    assert not [r for r in requires if ("ruff" in r or "build" in r) and "extra ==" not in r]
    assert not [r for r in requires if ("ruff" in r or "build>" in r) and '"test"' in r]
    description = metadata.split("\n\n", 1)[1]
    assert description.index("pip install nirs4all-store") < description.index("pip install -e")


@pytest.mark.slow
def test_installed_wheel_migrates_a_fresh_duckdb_from_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, INSTALL_TIMEOUT_S)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (`--python`), with dependencies from the
    # index: a dependency missing from pyproject makes the snippet's import fail.
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", str(wheel)],
        tmp_path,
        INSTALL_TIMEOUT_S,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # -I: neither the cwd nor PYTHON* variables reach sys.path, only the venv does.
    result = _run(
        [str(python), "-I", "-c", SNIPPET, str(outside / "store.duckdb")],
        outside,
        INSTALL_TIMEOUT_S,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["version"] == head_revision()
    site_packages = Path(
        _run(
            [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            outside,
            INSTALL_TIMEOUT_S,
        ).stdout.strip()
    ).resolve()
    for key in ("migrations_dir", "package_file"):
        location = Path(report[key]).resolve()
        assert location.is_relative_to(site_packages), f"{key}={location} not in {site_packages}"
        assert not location.is_relative_to(REPO_ROOT), f"{key}={location} is in the checkout"
    assert Path(report["migrations_dir"]).parts[-3:] == (PACKAGE, "db", "migrations")
