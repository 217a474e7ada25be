"""A host application's own Alembic project runs the store's migrations (issue 14).

The test writes a real host project on disk (alembic.ini, env.py, a revision with a table of
its own that calls `upgrade_on_connection(op.get_bind())`) and drives it with the real
`alembic` command, on SQLite and PostgreSQL: upgrade, autogenerate (no change for store
tables), downgrade of the host (store intact), and a failing host revision (nothing kept).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from nirs4all_store import WorkspaceStore
from nirs4all_store.db.migrate import HEAD_REVISION, VERSION_TABLE

ENV_PY = """
from alembic import context
import sqlalchemy as sa
from nirs4all_store.db.migrate import exclude_store_tables, include_host_name

metadata = sa.MetaData()
sa.Table("app_users", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("email", sa.String(200)))

engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      include_object=exclude_store_tables, include_name=include_host_name)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = '''
"""host: app_users, and the nirs4all store's schema

Revision ID: h001
Revises:
"""
import os
import sqlalchemy as sa
from alembic import op
from nirs4all_store.db.migrate import upgrade_on_connection

revision = "h001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("app_users", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("email", sa.String(200)))
    upgrade_on_connection(op.get_bind())
    if os.environ.get("HOST_FAILS"):
        raise RuntimeError("the host migration fails after the store's")


def downgrade():
    op.drop_table("app_users")
'''


def host_project(folder: Path, url: str) -> Path:
    (folder / "versions").mkdir(parents=True)
    (folder / "alembic.ini").write_text(
        textwrap.dedent(
            f"""
            [alembic]
            script_location = {folder}
            sqlalchemy.url = {url.replace("%", "%%")}
            path_separator = os
            """
        )
    )
    (folder / "env.py").write_text(ENV_PY)
    (folder / "script.py.mako").write_text(
        '"""${message}\n\nRevision ID: ${up_revision}\nRevises: ${down_revision | comma,n}\n"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n${imports if imports else ''}\n"
        "revision = ${repr(up_revision)}\ndown_revision = ${repr(down_revision)}\n"
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
        "    ${upgrades if upgrades else 'pass'}\n\n\ndef downgrade():\n"
        "    ${downgrades if downgrades else 'pass'}\n"
    )
    (folder / "versions" / "h001_app.py").write_text(REVISION)
    return folder / "alembic.ini"


def alembic(ini: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ini.parent,
        env={**os.environ, **env},
    )
    return done


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def host_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'host.sqlite'}"
        return
    from conftest import fresh_pg_database

    pg_url = request.getfixturevalue("pg_url")
    yield fresh_pg_database(pg_url, None)


def test_host_upgrade_autogenerate_and_downgrade(host_url: str, tmp_path: Path) -> None:
    ini = host_project(tmp_path / "host", host_url)
    done = alembic(ini, "upgrade", "head")
    assert done.returncode == 0, done.stderr
    found = tables(host_url)
    assert {"app_users", "alembic_version", VERSION_TABLE, "runs", "predictions"} <= found
    engine = sa.create_engine(host_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "h001"
        version = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    engine.dispose()
    assert version == HEAD_REVISION

    # The host's autogenerate sees no difference for the store's tables.
    done = alembic(ini, "revision", "--autogenerate", "-m", "check")
    assert done.returncode == 0, done.stderr
    (generated,) = [p for p in (ini.parent / "versions").glob("*.py") if p.name != "h001_app.py"]
    text = generated.read_text()
    assert "drop_table" not in text and "create_table" not in text, text
    assert "runs" not in text and "predictions" not in text
    generated.unlink()

    # The store opens it as it is (no migration), beside the host's table.
    with WorkspaceStore(tmp_path / "ws", url=host_url) as store:
        run_id = store.begin_run("in the host's database")

    done = alembic(ini, "downgrade", "base")
    assert done.returncode == 0, done.stderr
    found = tables(host_url)
    assert "app_users" not in found and {"runs", VERSION_TABLE} <= found
    with WorkspaceStore(tmp_path / "ws", url=host_url) as store:
        assert store.get_run(run_id)["name"] == "in the host's database"


def test_a_failing_host_revision_keeps_nothing_of_the_store(host_url: str, tmp_path: Path) -> None:
    ini = host_project(tmp_path / "host", host_url)
    done = alembic(ini, "upgrade", "head", HOST_FAILS="1")
    assert done.returncode != 0 and "the host migration fails" in done.stderr
    found = tables(host_url)
    if host_url.startswith("postgresql"):  # transactional DDL: the host's rollback is total
        assert not ({"app_users", "runs", VERSION_TABLE} & found), found
    else:
        # pysqlite (as the host configured it) commits DDL as it goes: the store's schema
        # is kept exactly when the host's own table is, never the one without the other.
        assert ("app_users" in found) == ("runs" in found) == (VERSION_TABLE in found), found
    engine = sa.create_engine(host_url)
    with engine.connect() as conn:  # the host's version table never names a store revision
        rows = (
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            if ("alembic_version" in found)
            else []
        )
    engine.dispose()
    assert rows == []
