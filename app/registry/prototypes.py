"""Prototypes and their tasks' mask sets: the results of finished jobs."""

from __future__ import annotations

import shutil

from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from ..models import Backbone, Job, MaskSet, Prototype, Task
from .base import NotFoundError, RegistryBase


class PrototypesMixin(RegistryBase):
    """Read prototypes and mask sets; delete a mask set."""

    def list_prototypes(self, *, backbone: str | None = None) -> list[Prototype]:
        query = (
            select(Prototype)
            .options(
                selectinload(Prototype.backbone),
                selectinload(Prototype.mask_sets).selectinload(MaskSet.task),
            )
            .order_by(Prototype.id.desc())
        )
        if backbone:
            query = query.join(Prototype.backbone).where(Backbone.name == backbone)
        with self._sessions() as s:
            return list(s.scalars(query))

    def prototype_owner(self, uid: str) -> tuple[bool, str | None]:
        """(whether prototype `uid` exists, the owner of the job that made it), in one light
        query (serving checks it on every request)."""
        query = (
            select(Prototype.id, Job.owner)
            .outerjoin(Job, Job.id == Prototype.job_id)
            .where(Prototype.uid == uid)
        )
        with self._sessions() as s:
            row = s.execute(query).first()
        return (False, None) if row is None else (True, row[1])

    def served_tasks(self, uid: str) -> list[tuple[str, str]]:
        """(task name, masks folder) of a prototype's tasks in order, read without the rest
        of the prototype (serving checks this on every request)."""
        query = (
            select(Task.name, MaskSet.artifact_path)
            .join(MaskSet.task)
            .join(MaskSet.prototype)
            .where(Prototype.uid == uid)
            .order_by(MaskSet.position)
        )
        with self._sessions() as s:
            rows = [(name, path) for name, path in s.execute(query)]
            if not rows and s.scalar(select(Prototype.id).where(Prototype.uid == uid)) is None:
                raise NotFoundError(f"no prototype {uid}")
            return rows

    def get_prototype(self, uid: str) -> Prototype:
        query = (
            select(Prototype)
            .where(Prototype.uid == uid)
            .options(
                selectinload(Prototype.backbone),
                selectinload(Prototype.mask_sets).selectinload(MaskSet.task),
            )
        )
        with self._sessions() as s:
            proto = s.scalar(query)
            if proto is None:
                raise NotFoundError(f"no prototype {uid}")
            return proto

    def prototype_uids(self, prefix: str, limit: int = 50) -> list[str]:
        """Uids of prototypes starting with `prefix` (the short id shown in the dashboard)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            select(Prototype.uid)
            .where(Prototype.uid.like(f"{escaped}%", escape="\\"))
            .order_by(Prototype.id.desc())
            .limit(limit)
        )
        with self._sessions() as s:
            return list(s.scalars(query))

    def prototype_for_job(self, job_id: int) -> Prototype | None:
        with self._sessions() as s:
            uid = s.scalar(select(Prototype.uid).where(Prototype.job_id == job_id))
        return self.get_prototype(uid) if uid else None

    def list_mask_sets(
        self, *, prototype_uid: str | None = None, task: str | None = None
    ) -> list[MaskSet]:
        query = (
            select(MaskSet)
            .options(selectinload(MaskSet.task), selectinload(MaskSet.prototype))
            .order_by(MaskSet.id)
        )
        if prototype_uid:
            query = query.join(MaskSet.prototype).where(Prototype.uid == prototype_uid)
        if task:
            query = query.join(MaskSet.task).where(Task.name == task)
        with self._sessions() as s:
            return list(s.scalars(query))

    def delete_mask_set(self, mask_set_id: int, *, remove_files: bool = True) -> None:
        """Drop a task's masks from a prototype (and their folder, after the commit)."""
        with self._tx() as s:
            mask_set = s.get(MaskSet, mask_set_id)
            if mask_set is None:
                raise NotFoundError(f"no mask set {mask_set_id}")
            path = mask_set.artifact_path
            s.execute(delete(MaskSet).where(MaskSet.id == mask_set_id))
        if remove_files and path:
            shutil.rmtree(path, ignore_errors=True)
