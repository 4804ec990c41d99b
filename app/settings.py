"""The one settings object of the product, read from `PROPETL_*` environment variables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^/]*@")
#: Fields whose values are secret (never shown) or may hold a password (shown masked).
SECRET_FIELDS = frozenset({"secret_key"})
URL_FIELDS = frozenset({"database_url", "broker_url", "result_backend"})


#: The server's pid, in its embedded worker's environment: the worker stops once its parent
#: is another process (the server died, even by SIGKILL; `worker.lifecycle` watches it).
PARENT_PID_ENV = "PROPETL_PARENT_PID"


def mask_url(url: str | None) -> str | None:
    """`url` with its password replaced by `***` (`postgresql://u:***@host/db`), for display."""
    return _URL_PASSWORD.sub(r"\1***@", url) if url else url


class Settings(BaseSettings):
    """Where data lives, how to reach the registry and the broker, and worker timings.

    Unset locations derive from `data_dir`: a SQLite registry, an embedded SQLite broker,
    and `artifacts/` and `runs/` folders, so one machine needs no server at all.
    """

    model_config = SettingsConfigDict(env_prefix="PROPETL_", extra="ignore")

    data_dir: Path = Path(".propetl")
    database_url: str = ""
    broker_url: str = ""
    result_backend: str | None = None
    artifacts_dir: Path | None = None
    runs_dir: Path | None = None
    default_queue: str = "propetl"
    heartbeat_interval: float = Field(5.0, gt=0, description="seconds between job heartbeats")
    reaper_timeout: float = Field(
        60.0, gt=0, description="a running job whose heartbeat is older than this is stale"
    )
    reaper_interval: float = Field(30.0, gt=0, description="seconds between reaper passes")
    progress_interval: float = Field(2.0, ge=0, description="at most one train-metric write per")
    max_attempts: int = Field(3, ge=1, description="runs of a job before the reaper fails it")
    db_retry_seconds: float = Field(
        60.0,
        ge=0,
        description="how long a worker retries a registry write while the database is unreachable",
    )
    visibility_timeout: int = Field(3600, ge=1, description="Redis re-delivery of unacked jobs")
    queued_resend_after: float = Field(
        600.0,
        gt=0,
        description="a job queued longer than this is sent to its queue again by "
        "the reaper (its broker message may be lost; claims are fenced)",
    )
    queues: str = Field(
        "",
        description="comma-separated queues jobs may name besides "
        "default_queue (others are refused at submit)",
    )
    backbone_dirs: str = Field(
        "",
        description="comma-separated server folders whose "
        "sub-folders API and dashboard jobs may name as "
        "backbones (the CLI may name any folder)",
    )
    login_max_failures: int = Field(
        5, ge=1, description="failed logins per user name per login_window before 429"
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="failed logins per address per window"
    )
    login_window: float = Field(60.0, gt=0, description="seconds of the login throttle window")
    auto_migrate: bool = True
    web_host: str = Field("127.0.0.1", description="address `propetl serve` binds")
    web_port: int = Field(7860, ge=1, le=65535)
    web_keepalive_s: float = Field(
        75.0,
        gt=0,
        description="seconds an idle HTTP keep-alive connection stays open; longer "
        "than clients' and proxies' own idle timeouts (5-60 s), so "
        "the server never closes a connection a client is reusing",
    )
    db_pool_size: int = Field(
        40,
        ge=1,
        le=1000,
        description="database connections a process keeps open (the web "
        "server checks predicts on up to 40 threads at once)",
    )
    db_max_overflow: int = Field(
        10, ge=0, le=1000, description="connections opened beyond db_pool_size under load"
    )
    # Serving (app/serving.py): concurrent predicts of one prototype run as one batch.
    serve_max_batch: int = Field(32, ge=1, description="most texts in one served batch")
    serve_max_wait_ms: float = Field(
        5.0, ge=0, description="how long a batch waits for more requests after its first"
    )
    serve_max_queue: int = Field(
        512, ge=1, description="requests waiting per prototype; more are refused with 503"
    )
    serve_retry_after: float = Field(1.0, gt=0, description="Retry-After (s) of such a 503")
    serve_recheck_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="how long a server trusts a prototype's owner and task "
        "list read from the registry (a request naming a task "
        "it has not seen reads it again at once)",
    )
    serve_task_cache: int = Field(
        64,
        ge=1,
        description="tasks whose masked tensors stay materialised per prototype "
        "(least recently used dropped); the others stay bit-packed",
    )
    # Users come later; these are placeholders the web part will read.
    auth_enabled: bool = False
    default_owner: str = "local"
    secret_key: str = ""

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'registry.sqlite'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"
        self.artifacts_dir = (
            (self.artifacts_dir or self.data_dir / "artifacts").expanduser().resolve()
        )
        self.runs_dir = (self.runs_dir or self.data_dir / "runs").expanduser().resolve()
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """repr() and str() never show the secret key or a password inside a URL."""
        for name, value in super().__repr_args__():
            if name in SECRET_FIELDS:
                yield name, "***" if value else ""
            elif name in URL_FIELDS:
                yield name, mask_url(value)
            else:
                yield name, value

    @property
    def allowed_queues(self) -> list[str]:
        """Queues a job may name: the default queue and those listed in `queues`."""
        extra = [q.strip() for q in self.queues.split(",") if q.strip()]
        return [self.default_queue, *(q for q in extra if q != self.default_queue)]

    @property
    def allowed_backbone_dirs(self) -> list[Path]:
        """Folders under which API and dashboard jobs may name backbone folders."""
        return [
            Path(p.strip()).expanduser().resolve()
            for p in self.backbone_dirs.split(",")
            if p.strip()
        ]

    @property
    def embedded_broker(self) -> bool:
        """True when the broker is the SQLite file under the data dir (no server)."""
        return self.broker_url.startswith("sqla+sqlite")

    def ensure_dirs(self) -> None:
        """Create the data, artifacts and runs folders."""
        for path in (self.data_dir, self.artifacts_dir, self.runs_dir):
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (call `reset_settings()` after changing the environment)."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings()` reads the environment again."""
    get_settings.cache_clear()
