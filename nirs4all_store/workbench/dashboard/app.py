"""The dashboard web application (Starlette + Jinja2 + plotly.js served from its package).

`create_app(workspace, url)` builds the ASGI app; `serve(...)` runs it with uvicorn and is
what `nirs4all-store ui` calls. Read-only: no route writes to the workspace (`verify` runs
without repair; a bundle download is written to a temporary folder).
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import plots
from . import data, shape, views
from .params import BadQuery

__all__ = ["create_app", "plotly_js_path", "serve"]

log = logging.getLogger("nirs4all_store.dashboard")
HERE = Path(__file__).parent
RETRY_AFTER_S = 2
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:"
)
Handler = Callable[[Request], Awaitable[Response]]


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly Python package (never a CDN)."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the dashboard needs plotly: pip install "nirs4all-store[ui]"')
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ImportError(f"plotly is installed but {path} is missing")
    return path


def _figure_json(figure: Any) -> Any:
    from markupsafe import Markup

    text = plots.to_json(figure)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _link(path: str, args: Mapping[str, Any], **changes: Any) -> str:
    """`path?query` from the current arguments with some changed (None drops one)."""
    merged = {**dict(args), **changes}
    query = urlencode({k: v for k, v in merged.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(
        score=shape.fmt_score,
        ms=shape.fmt_ms,
        time=shape.fmt_time,
        bytes=shape.fmt_bytes,
        short=shape.short,
        figjson=_figure_json,
    )
    env.globals.update(decode=shape.decode, link=_link)
    return templates


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, code: int, title: str, message: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if code == 503 else None
    if _wants_json(request):
        body: dict[str, Any] = {"error": title, "detail": message, "status": code}
        if code == 503:
            body["retry_after"] = RETRY_AFTER_S
        return JSONResponse(body, status_code=code, headers=headers)
    templates: Jinja2Templates = request.app.state.templates
    context = {"code": code, "title": title, "message": message, "retry": RETRY_AFTER_S}
    return templates.TemplateResponse(
        request, "error.html", {**_base(request), **context}, status_code=code, headers=headers
    )


def _base(request: Request) -> dict[str, Any]:
    return {"source": request.app.state.views.source.describe()}


def _guard(fn: Callable[[Request], Any]) -> Handler:
    """Run a sync view in the threadpool; map its errors to 400/404/503 pages."""

    async def endpoint(request: Request) -> Response:
        try:
            return await run_in_threadpool(fn, request)
        except BadQuery as exc:
            return _error(request, 400, "bad request", str(exc))
        except views.NotFound as exc:
            return _error(request, 404, "not found", str(exc.args[0] if exc.args else exc))
        except data.WorkspaceBusy as exc:
            log.info("workspace busy: %s", exc)
            return _error(
                request,
                503,
                "workspace busy, retrying",
                "Another process holds the workspace database (a run is recording into it). "
                f"This page retries every {RETRY_AFTER_S} s.",
            )

    return endpoint


def _page(template: str, view: Callable[[Request], dict[str, Any]]) -> Handler:
    def render(request: Request) -> Response:
        context = view(request)
        fragment = request.query_params.get("fragment") == "1"
        name = context.pop("_fragment", template) if fragment else template
        templates: Jinja2Templates = request.app.state.templates
        return templates.TemplateResponse(request, name, {**_base(request), **context})

    return _guard(render)


def _api(view: Callable[[Request], Any]) -> Handler:
    def answer(request: Request) -> Response:
        found = view(request)
        if isinstance(found, dict):
            found = {k: v for k, v in found.items() if not k.startswith("_")}
        return JSONResponse(_plain(found))

    return _guard(answer)


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text, dataclasses as dicts, numpy and NaN via plots."""
    import dataclasses
    import datetime as dt
    import json

    def default(obj: Any) -> Any:
        if isinstance(obj, dt.datetime):
            return obj.isoformat()
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        return str(obj)

    return json.loads(json.dumps(plots.to_plain(value), default=default))


def _state(request: Request) -> views.AppState:
    return request.app.state.views


def _runs(r: Request) -> dict[str, Any]:
    return {**views.runs(_state(r), r.query_params), "_fragment": "_runs_table.html"}


def _run(r: Request) -> dict[str, Any]:
    found = views.run(_state(r), r.path_params["run_id"], r.query_params)
    return {**found, "_fragment": "_run_live.html"}


def _spectra(r: Request) -> dict[str, Any]:
    return views.spectra(_state(r), r.path_params["run_id"], r.query_params)


def _chain(r: Request) -> dict[str, Any]:
    return views.chain(_state(r), r.path_params["chain_id"])


def _chain_api(r: Request) -> dict[str, Any]:
    found = _chain(r)
    return {k: found[k] for k in ("chain", "pipeline", "run", "artifacts", "metrics", "scores")}


def _plots_api(r: Request) -> dict[str, Any]:
    found = _chain(r)
    return {"figures": found["figures"], "series": found["series"]}


def _compare(r: Request) -> dict[str, Any]:
    return views.compare(_state(r), r.query_params)


def _workspace(r: Request) -> dict[str, Any]:
    return views.workspace(_state(r))


def _token(r: Request) -> dict[str, Any]:
    return views.token(_state(r), r.query_params)


def _verify_api(r: Request) -> dict[str, Any]:
    return views.run_verify(_state(r))


def _home(r: Request) -> Response:
    return RedirectResponse("/runs", status_code=307)


def _routes() -> list[Any]:
    return [
        Route("/", _home),
        Route("/runs", _page("runs.html", _runs)),
        Route("/runs/{run_id}", _page("run.html", _run)),
        Route("/runs/{run_id}/spectra", _page("spectra.html", _spectra)),
        Route("/chains/{chain_id}", _page("chain.html", _chain)),
        Route("/chains/{chain_id}/bundle.n4a", _guard(_bundle)),
        Route("/compare", _page("compare.html", _compare)),
        Route("/workspace", _page("workspace.html", _workspace)),
        Route("/workspace/verify", _guard(_verify), methods=["POST"]),
        Route("/api/token", _api(_token)),
        Route("/api/runs", _api(_runs)),
        Route("/api/runs/{run_id}", _api(_run)),
        Route("/api/runs/{run_id}/spectra", _api(_spectra)),
        Route("/api/chains/{chain_id}", _api(_chain_api)),
        Route("/api/chains/{chain_id}/plots", _api(_plots_api)),
        Route("/api/compare", _api(_compare)),
        Route("/api/workspace", _api(_workspace)),
        Route("/api/workspace/verify", _api(_verify_api), methods=["POST"]),
        Route("/static/vendor/plotly.min.js", _plotly),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def _bundle(request: Request) -> Response:
    chain_id = request.path_params["chain_id"]
    folder = Path(tempfile.mkdtemp(prefix="n4a-"))
    try:
        path = views.bundle(_state(request), chain_id, folder / f"chain-{chain_id[:8]}.n4a")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _verify(request: Request) -> Response:
    views.run_verify(_state(request))
    return RedirectResponse("/workspace", status_code=303)


async def _plotly(request: Request) -> Response:
    return FileResponse(request.app.state.plotly_js, media_type="text/javascript")


def _handlers() -> dict[Any, Callable[..., Any]]:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "error")
        detail = f"no page at {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return _error(request, exc.status_code, title, detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("error serving %s", request.url.path, exc_info=exc)  # server log only
        return _error(
            request,
            500,
            "internal error",
            "The dashboard failed to build this page; the server log has the details.",
        )

    return {HTTPException: http_error, Exception: server_error}


async def _security_headers(scope: Any, receive: Any, send: Any, app: Any) -> None:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            headers += [
                (b"content-security-policy", _CSP.encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
            ]
            message = {**message, "headers": headers}
        await send(message)

    await app(scope, receive, wrapped)


class _Headers:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _security_headers(scope, receive, send, self.app)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(
    workspace: str | Path | None = None,
    url: str | None = None,
    *,
    lock_timeout: float = 5.0,
    allowed_hosts: list[str] | None = None,
) -> Starlette:
    """The dashboard of a workspace folder (DuckDB) or of `url` (artifacts in the folder).

    ValueError when the workspace does not exist (a read-only dashboard creates nothing).
    `allowed_hosts`: Host headers accepted (default loopback names: DNS-rebinding guard).
    """
    source = data.Source.of(workspace, url, lock_timeout=lock_timeout)
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "[::1]", "::1"]
    app = Starlette(
        routes=_routes(),
        exception_handlers=_handlers(),
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(_Headers)],
    )
    app.state.views = views.AppState(source)
    app.state.templates = _templates()
    app.state.plotly_js = plotly_js_path()
    return app


def serve(
    workspace: str | None,
    url: str | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = False,
) -> None:
    """Run the dashboard until interrupted (`nirs4all-store ui`); says where it listens."""
    import uvicorn

    local = _is_loopback(host)
    app = create_app(workspace, url, allowed_hosts=None if local else ["*"])
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{port}/"
    print(
        f"nirs4all-store dashboard for {app.state.views.source.describe()} (read-only)\n"
        f"listening on {address}"
        + (
            " (this machine only; --host 0.0.0.0 to share it)"
            if local
            else f"\nWARNING: bound to {host}: anyone who can reach this machine can read the "
            "workspace"
        ),
        file=sys.stderr,
        flush=True,
    )
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(address,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
