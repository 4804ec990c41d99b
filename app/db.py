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
from sqlalchemy.exc import OperationalError
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
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


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


def retry_writes(attempts: int = 6, base_delay: float = 0.1) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a write on `OperationalError` (locked SQLite, dropped connection) with back-off."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(attempts):
                try:
                    return func(*args, **kwargs)
                except OperationalError as err:
                    if attempt == attempts - 1:
                        raise
                    delay = base_delay * 2**attempt * (1 + random.random())
                    log.warning("%s failed (%s); retry in %.2fs", func.__name__, err.orig, delay)
                    time.sleep(delay)
            raise AssertionError("unreachable")

        return wrapper

    return decorate


# --- migrations -------------------------------------------------------------------------

def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for `url` built in code (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
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
