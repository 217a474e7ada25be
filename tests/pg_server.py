"""A throwaway PostgreSQL server for the tests.

The PostgreSQL backend is only trustworthy if it is tested against a real server, and a
developer should get one with a plain `pytest` run: `throwaway_postgres()` initdb's a
cluster in a temporary folder (trust auth, TCP on 127.0.0.1 only, unix socket inside the
folder), starts it on a free port, yields a SQLAlchemy URL and removes everything at exit.

PostgreSQL refuses to run as root, so under root the cluster is created and run as an
unprivileged user (`postgres` when it exists, else `nobody`) that owns the folder.

Environment:
- `NIRS4ALL_PG_BIN`: folder holding `initdb` and `pg_ctl` (set by `.ci/run`).
- `NIRS4ALL_TEST_PG_URL`: use this existing server instead of starting one (conftest).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PG_BIN_ENV_VAR = "NIRS4ALL_PG_BIN"
TEST_URL_ENV_VAR = "NIRS4ALL_TEST_PG_URL"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "nirs4all_test"
START_TIMEOUT_S = 60
_REQUIRED = ("initdb", "pg_ctl")
# Where distributions install the server binaries (Debian, RHEL); newest version wins.
SEARCH_GLOBS: tuple[tuple[str, str], ...] = (
    ("/usr/lib/postgresql", "*/bin"),
    ("/usr", "pgsql-*/bin"),
)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Durability is pointless for a server that is deleted after the run; these make it fast.
_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "dynamic_shared_memory_type": "posix",
    "log_min_messages": "warning",
}


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL binaries, or the throwaway server could not be started."""


def _has_tools(folder: Path) -> bool:
    return all(
        (folder / tool).is_file() and os.access(folder / tool, os.X_OK) for tool in _REQUIRED
    )


def _version_key(folder: Path) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", str(folder))
    return tuple(int(n) for n in numbers)


def find_pg_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`, or None when PostgreSQL is not installed.

    Order: `$NIRS4ALL_PG_BIN`, then `pg_ctl` on PATH (symlinks resolved, because Debian's
    wrappers in /usr/local/bin do not sit beside the `postgres` executable), then the
    distribution folders (Debian /usr/lib/postgresql/<ver>/bin, RHEL /usr/pgsql-<ver>/bin),
    newest version first.
    """
    explicit = os.environ.get(PG_BIN_ENV_VAR, "").strip()
    if explicit:
        folder = Path(explicit)
        if not _has_tools(folder):
            raise PostgresUnavailableError(
                f"{PG_BIN_ENV_VAR}={explicit!r} does not contain executable "
                f"{' and '.join(_REQUIRED)}; expected a PostgreSQL bin folder such as "
                "/usr/lib/postgresql/15/bin"
            )
        return folder
    on_path = shutil.which("pg_ctl")
    if on_path:
        folder = Path(on_path).resolve().parent
        if _has_tools(folder):
            return folder
    candidates = [folder for base, pattern in SEARCH_GLOBS for folder in Path(base).glob(pattern)]
    for folder in sorted(candidates, key=_version_key, reverse=True):
        if _has_tools(folder):
            return folder
    return None


@dataclass(frozen=True)
class _RunAs:
    """Who runs the server: None (the current user) or an unprivileged account's ids."""

    uid: int | None = None
    gid: int | None = None


def _run_as() -> _RunAs:
    if os.name != "posix" or os.geteuid() != 0:
        return _RunAs()
    import pwd

    for name in (SUPERUSER, "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)
    raise PostgresUnavailableError(
        "running as root and neither a 'postgres' nor a 'nobody' account exists: "
        "PostgreSQL refuses to run as root"
    )


def _world_traversable(folder: Path) -> bool:
    """Whether another user can reach entries below `folder` (every parent has o+x)."""
    return all(part.stat().st_mode & 0o001 for part in (folder, *folder.parents))


def _make_temp_root(owner: _RunAs) -> Path:
    base = Path(tempfile.gettempdir())
    if owner.uid is not None and not _world_traversable(base):
        base = Path("/tmp")
    # Short prefix: the unix socket path must stay under ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="n4pg-", dir=base))
    if owner.uid is not None:
        os.chown(root, owner.uid, owner.gid if owner.gid is not None else -1)
    return root


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: Sequence[str | Path], owner: _RunAs, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        user=owner.uid,
        group=owner.gid,
        extra_groups=[] if owner.uid is not None else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=START_TIMEOUT_S * 2,
    )


def _check(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    details = (result.stdout + result.stderr).strip()
    if log is not None and log.is_file():
        details += "\n--- server log ---\n" + log.read_text(errors="replace")[-4000:]
    raise PostgresUnavailableError(f"{what} failed (exit {result.returncode}):\n{details}")


def postgres_url(port: int, database: str, host: str = "127.0.0.1") -> str:
    return f"postgresql+psycopg://{SUPERUSER}@{host}:{port}/{database}"


def _libpq_url(url: str) -> str:
    """The libpq form of a SQLAlchemy URL (psycopg does not understand `+psycopg`)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _validated_name(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"database name {name!r} is not valid: expected lowercase letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )
    return name


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url`; returns the URL of the new database.

    Lets a test work in a database of its own instead of sharing the session's one.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    _validated_name(name)
    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    """Drop database `name` (closing its sessions) on the server of `url`."""
    import psycopg
    from psycopg import sql

    _validated_name(name)
    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _start(bin_dir: Path, data: Path, log: Path, owner: _RunAs, cwd: Path) -> int:
    """Start the cluster on a free port; retries when another process took the port."""
    conf = data / "postgresql.conf"
    last: subprocess.CompletedProcess[str] | None = None
    for _attempt in range(3):
        port = free_port()
        settings = {**_SERVER_SETTINGS, "port": str(port)}
        settings["unix_socket_directories"] = f"'{cwd}'"
        with conf.open("a") as handle:
            handle.write("\n# throwaway test server\n")
            handle.writelines(f"{key} = {value}\n" for key, value in settings.items())
        last = _run(
            [bin_dir / "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D", data, "-l", log],
            owner,
            cwd,
        )
        if last.returncode == 0:
            return port
        log_text = log.read_text(errors="replace") if log.is_file() else ""
        if "could not bind" not in log_text and "already in use" not in log_text:
            break
    assert last is not None
    _check(last, "pg_ctl start", log)
    raise PostgresUnavailableError("pg_ctl start failed")  # _check raised already


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def session_pg_url() -> Iterator[str]:
    """Body of the session fixture `pg_url`: a live PostgreSQL URL for the test run.

    `$NIRS4ALL_TEST_PG_URL` when set, else a throwaway server. Skips only outside CI when no
    PostgreSQL binaries exist; in CI (CI=true) a missing or broken server is an error, so
    the PostgreSQL tests can never silently vanish from the CI run.
    """
    import pytest

    external = os.environ.get(TEST_URL_ENV_VAR, "").strip()
    if external:
        yield external
        return
    if not running_in_ci() and find_pg_bin() is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql, set "
            f"{PG_BIN_ENV_VAR}, or point {TEST_URL_ENV_VAR} at a server"
        )
    with throwaway_postgres() as url:
        yield url


@contextlib.contextmanager
def throwaway_postgres(
    database: str = DEFAULT_DATABASE, bin_dir: Path | None = None
) -> Iterator[str]:
    """Run a private PostgreSQL server for the duration of the block; yields its URL.

    Raises `PostgresUnavailableError` when the binaries are missing or the server does not
    start (the message carries initdb's / the server log's explanation).
    """
    _validated_name(database)
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise PostgresUnavailableError(
            "PostgreSQL binaries (initdb, pg_ctl) not found: install PostgreSQL "
            f"(Debian: apt-get install postgresql) or set {PG_BIN_ENV_VAR}"
        )
    owner = _run_as()
    root = _make_temp_root(owner)
    data = root / "data"
    log = root / "server.log"
    try:
        _check(
            _run(
                [
                    bin_dir / "initdb",
                    "-D",
                    data,
                    "-U",
                    SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                owner,
                root,
            ),
            "initdb",
        )
        port = _start(bin_dir, data, log, owner, root)
        url = create_database(postgres_url(port, "postgres"), database)
        yield url
    except BaseException:
        _stop(bin_dir, data, log, owner, root, raise_on_error=False)
        raise
    else:
        _stop(bin_dir, data, log, owner, root, raise_on_error=True)


def _stop(
    bin_dir: Path, data: Path, log: Path, owner: _RunAs, root: Path, *, raise_on_error: bool
) -> None:
    """Stop the server if it runs (a timed-out start may have left one) and delete `root`."""
    try:
        if (data / "postmaster.pid").exists():
            result = _run([bin_dir / "pg_ctl", "stop", "-w", "-m", "fast", "-D", data], owner, root)
            if raise_on_error:
                _check(result, "pg_ctl stop", log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
