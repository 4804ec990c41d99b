"""The registry's service layer: every read and write of jobs, results and metrics.

Nothing else opens a database session. Workers call the `claim / heartbeat / report /
finish / fail` operations, fenced by the attempt number `claim_job` hands out, so a worker
that was presumed dead cannot overwrite the run that replaced it.

One class, `Registry`, assembled from one part per resource (each over `RegistryBase`, which
holds the engine, the sessions and the transaction helper):

- `jobs`: submit, read, annotate, cancel, retry and fail jobs
- `claims`: the worker side: claim, heartbeat, progress, endings
- `reaper`: re-queue or fail lost runs, re-send lost broker messages
- `sweeps`: sweeps and their jobs
- `prototypes`: prototypes and their tasks' mask sets
- `metrics`: metric points and the curves read back
- `catalog`: backbones and tasks
"""

from __future__ import annotations

from functools import lru_cache

from ..settings import get_settings
from .base import Enqueue, InvalidStateError, NotFoundError
from .claims import Claim, ClaimsMixin, RunOutcome, Signal, TaskOutcome
from .metrics import MetricsMixin, Point
from .prototypes import PrototypesMixin
from .reaper import ReaperMixin
from .sweeps import SweepsMixin

__all__ = [
    "Claim",
    "Enqueue",
    "InvalidStateError",
    "NotFoundError",
    "Point",
    "Registry",
    "RunOutcome",
    "Signal",
    "TaskOutcome",
    "get_registry",
    "reset_registry",
]


class Registry(ClaimsMixin, ReaperMixin, SweepsMixin, PrototypesMixin, MetricsMixin):
    """Operations on the registry database at `url` (default: the settings' database)."""


@lru_cache(maxsize=4)
def _registry_for(url: str) -> Registry:
    settings = get_settings()
    return Registry(url, settings=settings, migrate=settings.auto_migrate)


def get_registry() -> Registry:
    """The process-wide registry on the settings' database, migrated on first use."""
    return _registry_for(get_settings().database_url)


def reset_registry() -> None:
    _registry_for.cache_clear()
