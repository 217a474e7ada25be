"""Helpers of the dashboard tests: a workspace filled by real `run()` calls, the real
dashboard server in its own process on a free port of 127.0.0.1, urllib, headless Chromium.

A plain module (not a conftest.py) so that it never clashes with the suite's conftest files;
the fixtures live in the test modules."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


SERVER = Path(__file__).resolve().parent / "dashboard_server.py"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 30.0
) -> Answer:
    """One real HTTP request (urllib); error statuses are answers too."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **kw: Any) -> Answer:
        return fetch(self.base + path, **kw)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(workspace: Path | None, log: Path, url: str | None = None) -> Server:
    """The dashboard in a subprocess, as `nirs4all-store ui` runs it; waits until it answers."""
    for _ in range(5):
        port = free_port()
        args = [sys.executable, str(SERVER), "--port", str(port)]
        args += ["--workspace", str(workspace)] if workspace else []
        args += ["--url", url] if url else []
        handle = log.open("wb")
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=os.environ)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if fetch(base + "/static/app.css", timeout=2).status == 200:
                    return Server(base, process, log)
            except OSError:
                time.sleep(0.1)
        process.kill()
        process.wait()
        if "address already in use" not in log.read_text(errors="replace"):
            break
    raise RuntimeError(f"dashboard did not start:\n{log.read_text(errors='replace')}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@dataclass
class Filled:
    path: Path
    runs: dict[str, str] = field(default_factory=dict)  # label -> run_id
    best: dict[str, str] = field(default_factory=dict)  # label -> best chain id
    datasets: dict[str, Any] = field(default_factory=dict)


def fill_workspace(path: Path) -> Filled:
    """Three real runs (regression with a failing pipeline, its rerun, classification) and
    one interrupted run, on small synthetic spectra."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    import nirs4all_store as n4s

    filled = Filled(path)
    reg = n4s.synthetic_nirs(120, 60, seed=3, test_fraction=0.25)
    cls = n4s.synthetic_nirs(120, 60, task="classification", seed=4, test_fraction=0.25)
    filled.datasets = {"regression": reg, "classification": cls}
    plans = {
        "sweep": (
            [
                [MinMaxScaler(), PLSRegression(4)],
                [StandardScaler(), Ridge(alpha=1.0)],
                [n4s.SNV(), PLSRegression(3)],
                [PLSRegression(n_components=500)],
            ],
            reg,
        ),
        "rerun": ([[MinMaxScaler(), PLSRegression(4)], [StandardScaler(), Ridge(alpha=1.0)]], reg),
        "classes": (
            [
                [StandardScaler(), LogisticRegression(max_iter=500)],
                [n4s.SNV(), LogisticRegression(C=0.1, max_iter=500)],
            ],
            cls,
        ),
    }
    for label, (pipelines, dataset) in plans.items():
        with n4s.run(pipelines, dataset, path, name=f"{label} run", cv=3, verbose=0) as result:
            filled.runs[label] = result.run_id
            filled.best[label] = str(result.best["chain_id"])
    with n4s.WorkspaceStore(path) as store:
        run_id = store.begin_run("stopped run", config={"metric": "rmse"}, datasets=[])
        store.fail_run(run_id, "interrupted: KeyboardInterrupt: ")
        filled.runs["stopped"] = run_id
    return filled


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def headless(url: str, tmp: Path, *, screenshot: Path | None = None, budget_ms: int = 8000) -> str:
    """Run headless Chromium on `url`: (the DOM after scripts ran, or nothing when taking a
    screenshot; Chromium's log, where console messages show as ':CONSOLE' lines)."""
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser checks skipped")
    profile = tmp / f"profile-{time.monotonic_ns()}"
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1400,1000",
        "--enable-logging=stderr",
        "--v=0",
    ]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([*args, url], capture_output=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    return done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
