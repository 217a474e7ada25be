"""`nirs4all-store ui`: the dashboard served by a real process, fetched over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nirs4all_store import WorkspaceStore

# Guards against a server that never comes up; nothing asserts on duration.
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    """Status and body of a GET (redirects followed; an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_ui_serves_the_workspace_over_http(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    ws = tmp_path / "ws"
    with WorkspaceStore(ws) as store:
        run_id = store.begin_run("served run")
        store.complete_run(run_id, summary={"pipelines": 0})
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "NIRS4ALL_STORE_URL"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nirs4all_store",
            "ui",
            "--workspace",
            str(ws),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"ui exited early: {proc.communicate()}"
            try:
                status, page = _get(f"http://127.0.0.1:{port}/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.2)
        assert status == 200, page[-2000:]
        assert "served run" in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert f"listening on http://127.0.0.1:{port}/" in err


def test_ui_without_its_extra_says_how_to_install(tmp_path: Path) -> None:
    """In a fresh interpreter where starlette cannot be imported (the [ui] extra missing):
    the CLI's error names the install command, with no traceback (a subprocess: in this
    process the dashboard may already be imported by other tests)."""
    WorkspaceStore(tmp_path / "ws").close()
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from nirs4all_store.cli.main import main\n"
        f"sys.exit(main(['ui', '--workspace', {str(tmp_path / 'ws')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert 'pip install "nirs4all-store[ui]"' in done.stderr and "Traceback" not in done.stderr
