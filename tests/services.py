"""Helpers shared by the registry, worker and reliability tests: throw-away PostgreSQL
databases, Redis, and private servers that a test may stop and restart."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator

PG_ADMIN = os.environ.get("PROPETL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PROPETL_TEST_REDIS", "redis://127.0.0.1:6379/11")


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except Exception:
        return False


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@contextlib.contextmanager
def temp_postgres_db() -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL service; dropped afterwards."""
    import psycopg

    name = f"propetl_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        from app import db

        db.dispose_engines()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- private servers that a test may stop and restart (never the shared services) ----------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, up: bool, timeout: float, what: str) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            reachable = sock.connect_ex(("127.0.0.1", port)) == 0
        if reachable == up:
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not {'start' if up else 'stop'} in {timeout:.0f}s")


class PrivateRedis:
    """A redis-server of this test alone on a free loopback port, data in `folder`.

    `appendonly=True` keeps every write in an append-only file, as the compose deployment
    does, so queued and unacknowledged messages survive a restart.
    """

    def __init__(self, folder: os.PathLike[str] | str, appendonly: bool = True) -> None:
        import shutil
        from pathlib import Path

        if shutil.which("redis-server") is None:
            import pytest

            pytest.skip("redis-server is not installed")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--dir",
            str(self.folder),
        ]
        log = (self.folder / "redis.log").open("a")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, True, 20, "redis-server")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: redis flushes its append-only file and exits)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        _wait_port(self.port, False, 20, "redis-server")

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


PG_BIN = os.environ.get("PROPETL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of this test alone (initdb in `folder`, a free loopback port,
    trust auth); run as the `postgres` user when the test runs as root."""

    def __init__(self, folder: os.PathLike[str] | str) -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.data = self.folder / "pg"
        self.port = free_port()
        missing = [b for b in ("initdb", "pg_ctl") if not Path(PG_BIN, b).is_file()]
        if missing:
            import pytest

            pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}: {missing}")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [f"{PG_BIN}/{args[0]}", *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        import shutil

        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "pg.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        _wait_port(self.port, True, 30, "postgres")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every client connection and shuts down; `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        _wait_port(self.port, False, 30, "postgres")

    def __enter__(self) -> PrivatePostgres:
        self.init()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(RuntimeError, AssertionError):
            self.stop("immediate")
