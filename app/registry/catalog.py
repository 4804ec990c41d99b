"""The catalog: backbones and tasks by unique name, listed and created on first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Backbone, Task, utcnow
from .base import RegistryBase, _insert_for


class CatalogMixin(RegistryBase):
    """List backbones and tasks; get-or-create their rows."""

    def list_tasks(self) -> list[Task]:
        with self._sessions() as s:
            return list(s.scalars(select(Task).order_by(Task.name)))

    def list_backbones(self) -> list[Backbone]:
        with self._sessions() as s:
            return list(s.scalars(select(Backbone).order_by(Backbone.name)))

    # --- get-or-create of reference rows --------------------------------------------------

    def _ensure_names(self, model: type[Backbone] | type[Task], names: list[str]) -> None:
        """Insert missing rows by unique name (safe when two workers finish at once)."""
        with self._tx() as s:
            insert = _insert_for(s)
            stmt = insert(model).values([{"name": n, "created_at": utcnow()} for n in names])
            s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

    @staticmethod
    def _backbone(s: Session, name: str, storage: dict[str, Any]) -> Backbone:
        row = s.scalar(select(Backbone).where(Backbone.name == name))
        assert row is not None, "created by _ensure_names"
        row.source = "tiny" if name.startswith("tiny-") else row.source
        if storage.get("backbone_params"):
            row.num_params = int(storage["backbone_params"])
        return row

    @staticmethod
    def _task(s: Session, name: str, info: dict[str, Any]) -> Task:
        """The one row of task `name`, with the catalog's description of it. An uploaded
        task's labels and sizes are its owner's, and another user's upload may have the same
        name: they are kept on the mask set only (`MaskSet.task_info`), never here."""
        row = s.scalar(select(Task).where(Task.name == name))
        assert row is not None, "created by _ensure_names"
        if info.get("source", "file") == "file":
            return row
        row.source = info["source"]
        row.text_columns = list(info.get("text_columns") or [])
        labels = info.get("label_names")
        row.label_names = list(labels) if labels is not None else None
        row.metrics = list(info.get("metrics") or [])
        row.main_metric = info.get("main_metric") or ""
        row.sizes = info.get("sizes")
        row.description = info.get("description") or ""
        s.flush()
        return row
