"""The one access policy of the product, used by the REST API and every dashboard handler.

`Access(auth, user, registry)` answers for one caller. With login off everything is visible.
With login on a user sees and acts on their own jobs, sweeps, prototypes (those of their
jobs), the tasks of those prototypes, and their own uploads; an admin (`PROPETL_ADMINS`)
sees everyone's. Others' work is answered exactly like missing work: `NotFoundError` with the
same message ("no job 7"), so a caller cannot learn what exists. Lists hold only what the
caller may see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import uploads
from .auth import Auth
from .models import Job, MaskSet, Prototype, Sweep
from .registry import NotFoundError, Registry, get_registry

#: Shortest prototype id prefix accepted (the dashboard shows 8 characters).
MIN_PREFIX = 4


class AmbiguousError(ValueError):
    """A short prototype id that more than one of the caller's prototypes start with (422)."""


@dataclass(frozen=True)
class Access:
    """What one caller (`user`, None without login) may see and change."""

    auth: Auth
    user: str | None
    registry: Registry

    @classmethod
    def of(cls, auth: Auth, user: str | None, registry: Registry | None = None) -> Access:
        return cls(auth, user, registry or get_registry())

    # --- who -------------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """The owner recorded for work this caller creates."""
        return self.auth.owner_for(self.user)

    @property
    def sees_all(self) -> bool:
        return not self.auth.enabled or (self.user is not None and self.user in self.auth.admins)

    def allows(self, owner: str | None) -> bool:
        """True when the caller may see and change work owned by `owner` (work without an
        owner, a prototype whose job was deleted, only with login off or for an admin)."""
        return self.sees_all or (owner is not None and owner == self.user)

    def _owner_filter(self, owner: str | None) -> tuple[bool, str | None]:
        """(anything visible?, owner filter) of a listing asked for `owner`."""
        if self.sees_all:
            return True, owner
        if self.user is None:  # login on, nobody logged in: nothing
            return False, None
        return owner in (None, "", self.user), self.user

    # --- jobs and sweeps -------------------------------------------------------------------

    def job(self, job_id: int) -> Job:
        job = self.registry.get_job(int(job_id))  # NotFoundError("no job N") when missing
        if not self.allows(job.owner):
            raise NotFoundError(f"no job {int(job_id)}")
        return job

    def jobs(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        sweep_id: int | None = None,
        limit: int = 100,
    ) -> list[Job]:
        visible, owner = self._owner_filter(owner)
        if not visible:
            return []
        return self.registry.list_jobs(status=status, owner=owner, sweep_id=sweep_id, limit=limit)

    def sweep(self, sweep_id: int) -> Sweep:
        sweep = self.registry.get_sweep(int(sweep_id))
        if not self.allows(sweep.owner):
            raise NotFoundError(f"no sweep {int(sweep_id)}")
        return sweep

    def sweeps(self, *, owner: str | None = None, limit: int = 100) -> list[Sweep]:
        visible, owner = self._owner_filter(owner)
        return self.registry.list_sweeps(owner=owner, limit=limit) if visible else []

    # --- prototypes and their tasks ------------------------------------------------------

    def _proto_owner(self, proto: Prototype) -> str | None:
        return self.registry.job_owners([proto.job_id]).get(proto.job_id or -1)

    def prototype(self, uid: str) -> Prototype:
        """The caller's prototype `uid`, or the only one of theirs whose id starts with it."""
        missing = NotFoundError(f"no prototype {uid}")
        uid = (uid or "").strip()
        if not uid:
            raise missing
        try:
            proto = self.registry.get_prototype(uid)
        except NotFoundError:
            proto = None
        if proto is not None:
            if not self.allows(self._proto_owner(proto)):
                raise missing
            return proto
        if len(uid) < MIN_PREFIX:
            raise missing
        candidates = self.registry.prototype_uids(uid)
        owners = self._owners_of_uids(candidates)
        mine = [u for u in candidates if self.allows(owners.get(u))]
        if not mine:
            raise missing
        if len(mine) > 1:
            raise AmbiguousError(
                f"prototype id {uid!r} is ambiguous: it starts "
                f"{len(mine)} of your prototypes ({', '.join(mine[:5])}); "
                "give more characters"
            )
        return self.registry.get_prototype(mine[0])

    def prototype_uid(
        self, uid: str, owner_of: Callable[[str], tuple[bool, str | None]] | None = None
    ) -> str:
        """`prototype(uid).uid`, without loading the prototype when `uid` is a whole id
        (every predict checks it: loading every mask set cost more than the forward).
        `owner_of`: the lookup of (exists, owner), `Registry.prototype_owner` by default (the
        serving engine passes its own, which keeps recent answers)."""
        found, owner = (owner_of or self.registry.prototype_owner)((uid or "").strip())
        if not found:
            return self.prototype(uid).uid  # a prefix, or missing
        if not self.allows(owner):
            raise NotFoundError(f"no prototype {uid}")
        return uid.strip()

    def _owners_of_uids(self, uids: list[str]) -> dict[str, str | None]:
        protos = [p for p in self.registry.list_prototypes() if p.uid in set(uids)]
        owners = self.registry.job_owners(p.job_id for p in protos)
        return {p.uid: owners.get(p.job_id or -1) for p in protos}

    def prototypes(self, *, backbone: str | None = None) -> list[Prototype]:
        protos = self.registry.list_prototypes(backbone=backbone)
        if self.sees_all:
            return protos
        owners = self.registry.job_owners(p.job_id for p in protos)
        return [p for p in protos if self.allows(owners.get(p.job_id or -1))]

    def mask_set(self, uid: str, task: str) -> tuple[Prototype, MaskSet]:
        """A prototype of the caller and its masks for `task` (the prototype is checked
        first: another's prototype is "no prototype", whatever tasks it holds)."""
        proto = self.prototype(uid)
        found = next((m for m in proto.mask_sets if m.task.name == task), None)
        if found is None:
            raise NotFoundError(f"prototype {proto.uid} has no masks for task {task!r}")
        return proto, found

    def task_names(self) -> set[str]:
        """Names of registered tasks the caller may see: the catalog's, and those of the
        caller's prototypes."""
        from propetl.data import task_names

        names = set(task_names())
        for proto in self.prototypes():
            names.update(m.task.name for m in proto.mask_sets)
        return names

    # --- uploads ---------------------------------------------------------------------------

    @property
    def anonymous(self) -> bool:
        """Login on and nobody logged in (e.g. the page being built): owns nothing."""
        return self.auth.enabled and self.user is None

    def uploads(self) -> list[Path]:
        if self.anonymous:
            return []
        return uploads.list_uploads(self.owner, self.registry.settings)

    def upload(self, name: str) -> Path:
        """The caller's upload `name` (`UploadNotFound` otherwise)."""
        if self.anonymous:
            raise uploads.UploadNotFound(f"you have no upload named {name!r}")
        return uploads.resolve(self.owner, name, self.registry.settings)

    def upload_folder(self) -> Path:
        return uploads.folder_for(self.owner, self.registry.settings)


def for_request(auth: Auth, request: Any, registry: Registry | None = None) -> Access:
    """The access of a dashboard event (`gr.Request`: its logged-in user name)."""
    return Access.of(auth, getattr(request, "username", None), registry)
