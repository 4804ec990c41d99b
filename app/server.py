"""One server: the FastAPI app (REST API under /api) with the Gradio dashboard mounted at /.

`propetl serve` migrates the registry, starts an embedded Celery worker process when the
broker is the embedded SQLite one (stopped with the server), and runs uvicorn.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import click
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from .auth import Auth, get_auth
from .settings import PARENT_PID_ENV, Settings, get_settings

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


def create_app(auth: Auth | None = None, *, ui: bool = True) -> FastAPI:
    """The FastAPI app with the API, and the dashboard at / unless `ui=False`."""
    from . import api

    auth = auth or get_auth()
    app = FastAPI(
        title="ProPETL Studio API",
        version="0.1.0",
        description="Train many tasks over one shared prototype with binary masks; "
        "serve any task by swapping masks.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    throttle = api.login_throttle()
    api.install(app, auth, throttle)

    @app.get("/api", include_in_schema=False)
    def api_root() -> RedirectResponse:
        return RedirectResponse("/api/docs")

    if ui:
        import gradio as gr

        from .ui import CSS, HEAD, THEME, build_ui

        login = auth.check_password if auth.enabled else None
        from .ui import guard
        from .uploads import MAX_UPLOAD_BYTES

        demo = build_ui(auth)
        guard.install(demo, auth)  # every event runs as its user, through app/access.py
        gr.mount_gradio_app(
            app,
            demo,
            path="/",
            auth=login,
            theme=THEME,
            css=CSS,
            head=HEAD,
            auth_message="ProPETL Studio: log in to continue",
            footer_links=["api"],
            ssr_mode=False,
            max_file_size=MAX_UPLOAD_BYTES,
        )  # refused before it is stored
    if auth.enabled:
        from .throttle import LoginThrottleMiddleware

        app.add_middleware(LoginThrottleMiddleware, throttle=throttle)
    return app


def _worker_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        settings.default_queue,
        "-c",
        "1",
        "--pool",
        "solo",
        "-l",
        "info",
        "-n",
        f"propetl-embedded-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """A `preexec_fn`: on Linux the kernel sends the worker SIGTERM (a warm shutdown: a job
    running finishes first) when the server dies; elsewhere the watchdog alone does."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            with suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the server died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@contextmanager
def embedded_worker(settings: Settings, enabled: bool) -> Iterator[subprocess.Popen | None]:
    """Run a Celery worker process beside the server (its log in `<data>/logs/worker.log`);
    it stops with the server, and by itself when the server is killed."""
    if not enabled:
        yield None
        return
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    with (logs / "worker.log").open("ab") as out:
        proc = subprocess.Popen(
            _worker_command(settings),
            cwd=REPO,
            stdout=out,
            env=env,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
    click.echo(f"embedded worker pid {proc.pid}, log {logs / 'worker.log'}", err=True)
    try:
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@click.command()
@click.option(
    "--host", default=None, help="address to bind (default: PROPETL_WEB_HOST, else 127.0.0.1)"
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="port (default: PROPETL_WEB_PORT, else 7860)",
)
@click.option(
    "--worker/--no-worker",
    "worker",
    default=None,
    help="start a worker process here (default: only with the embedded broker)",
)
@click.option("--log-level", default="info", show_default=True)
def serve(host: str | None, port: int | None, worker: bool | None, log_level: str) -> None:
    """Start the dashboard and REST API (http://HOST:PORT, API docs at /api/docs)."""
    import uvicorn

    from . import db

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    settings = get_settings()
    host = host or settings.web_host
    port = port or settings.web_port
    settings.ensure_dirs()
    db.upgrade()
    app = create_app()
    # uvicorn re-raises the SIGTERM it caught once it has shut down; exiting through Python
    # (not the signal's default action) lets the embedded worker be stopped with the server.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with embedded_worker(settings, settings.embedded_broker if worker is None else worker):
        click.echo(f"ProPETL Studio on http://{host}:{port}  (API docs: /api/docs)", err=True)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            timeout_keep_alive=settings.web_keepalive_s,
        )
