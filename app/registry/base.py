"""What every part of the registry shares: the engine, its sessions, the transaction helper
and the errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db
from ..settings import Settings, get_settings

Enqueue = Callable[[int, str, str], None]


class NotFoundError(LookupError):
    """No row with that id."""


class InvalidStateError(ValueError):
    """The operation does not apply to the job's current status."""


def _default_enqueue(job_id: int, queue: str, task_id: str) -> None:
    from ..queue import enqueue_job

    enqueue_job(job_id, queue, task_id)


def _insert_for(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"no upsert for {name}")
    return insert


class RegistryBase:
    """The registry database at `url` (default: the settings' database) and its sessions;
    the per-resource parts of `Registry` build on it."""

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        enqueue: Enqueue | None = None,
        migrate: bool = False,
    ) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.database_url
        self.engine = db.get_engine(self.url)
        self._sessions = db.session_factory(self.engine)
        self._enqueue = enqueue or _default_enqueue
        if migrate:
            db.upgrade(self.url)

    def _tx(self) -> Any:
        return db.transaction(self._sessions)

    def ping(self) -> None:
        """Raise when the database does not answer (a health check's one query)."""
        with self._tx() as s:
            s.execute(select(1))
