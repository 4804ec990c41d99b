"""Database engines and sessions, write retries, and Alembic migrations run from code."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .settings import get_settings

log = logging.getLogger(__name__)

#: The Alembic environment shipped with the package (works from an installed wheel too).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

P = ParamSpec("P")
R = TypeVar("R")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """A new engine for `url`; SQLite files get WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    settings = get_settings()
    # Enough pooled connections for the web server's threads: with SQLAlchemy's default 5,
    # concurrent predicts opened (and closed) a new connection each, its pragmas included.
    pool = {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:  # an in-memory database lives in one connection per thread (no queue pool)
            pool = {}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def get_engine(url: str | None = None) -> Engine:
    """The shared engine of this process for `url` (default: the settings' database)."""
    url = url or get_settings().database_url
    with _lock:
        if url not in _engines:
            _engines[url] = create_db_engine(url)
        return _engines[url]


def dispose_engines() -> None:
    """Close every pooled connection (after a fork, or between tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def is_connection_error(err: BaseException) -> bool:
    """True for errors that a retry may cure: a locked SQLite file, a database that is down,
    restarting or unreachable, a connection that dropped mid-statement."""
    if isinstance(err, (OperationalError, InterfaceError)):
        return True
    return isinstance(err, DBAPIError) and bool(err.connection_invalidated)


def _first_line(err: object) -> str:
    return next(iter(str(err).strip().splitlines()), "")


def retry_writes(
    timeout: float | None = None, base_delay: float = 0.1, max_delay: float = 5.0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a write on connection errors with jittered exponential back-off.

    Gives up (re-raising the last error) once `timeout` seconds have passed, by default
    the settings' `db_retry_seconds`, read at call time. Other errors are raised at once.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = get_settings().db_retry_seconds if timeout is None else timeout
            deadline = time.monotonic() + bound
            attempt = 0
            while True:
                try:
                    return func(*args, **kwargs)
                except DBAPIError as err:
                    left = deadline - time.monotonic()
                    if not is_connection_error(err) or left <= 0:
                        raise
                    delay = min(max_delay, base_delay * 2**attempt) * (0.5 + random.random() / 2)
                    delay = min(delay, left)
                    attempt += 1
                    log.warning(
                        "%s failed (%s: %s); retry %d in %.2fs, giving up in %.0fs",
                        func.__name__,
                        err.__class__.__name__,
                        _first_line(err.orig),
                        attempt,
                        delay,
                        left,
                    )
                    time.sleep(delay)

        return wrapper

    return decorate


# --- migrations -------------------------------------------------------------------------


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for `url` built in code (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%")
    )
    return config


def _migrate(step, url: str | None, revision: str) -> None:
    """Run an Alembic command on the database at `url` in one transaction."""
    url = url or get_settings().database_url
    with get_engine(url).connect() as conn:
        # SQLite batch migrations rebuild tables: a DROP TABLE must not cascade to child rows
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                config = alembic_config(url)
                config.attributes["connection"] = conn
                step(config, revision)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (idempotent)."""
    _migrate(command.upgrade, url, revision)


def downgrade(url: str | None = None, revision: str = "-1") -> None:
    """Take the database at `url` down to `revision` ("base" drops every table)."""
    _migrate(command.downgrade, url, revision)


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at `url` is at (None when not migrated)."""
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped in `migrations/versions`."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
