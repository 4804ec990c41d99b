"""The registry's tables: backbones, tasks, sweeps, jobs, prototypes, mask sets, metric points."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint names that Alembic and every database agree on.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


#: 64-bit ids on PostgreSQL, SQLite's rowid integer there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATUSES = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)
#: The largest id a row can have (SQLite's INTEGER, PostgreSQL's BIGINT): bounds ids given
#: by callers, which would overflow the database driver.
MAX_ID = 2**63 - 1


class Backbone(Base):
    """A frozen backbone that prototypes are trained over."""

    __tablename__ = "backbones"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(32), default="hub-or-path")
    description: Mapped[str] = mapped_column(Text, default="")
    num_params: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """A task: where its data comes from, its columns, labels, metric and split sizes."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(32), default="file")
    text_columns: Mapped[list[Any]] = mapped_column(default=list)
    label_names: Mapped[list[Any] | None] = mapped_column(JSON)
    metrics: Mapped[list[Any]] = mapped_column(default=list)
    main_metric: Mapped[str] = mapped_column(String(64), default="")
    sizes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A grid of jobs launched together: one base spec and the values each swept field takes."""

    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    owner: Mapped[str] = mapped_column(String(100), default="local", index=True)
    base_spec: Mapped[dict[str, Any]] = mapped_column()
    grid: Mapped[dict[str, Any]] = mapped_column()  # field path -> list of values, in order
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="sweep", order_by="Job.id")


class Job(Base):
    """A training job: its validated spec, where it runs, and how far it got."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_queue", "status", "queue"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    owner: Mapped[str] = mapped_column(String(100), default="local", index=True)
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    spec: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    phase: Mapped[str | None] = mapped_column(String(16))
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    samples_per_second: Mapped[float | None] = mapped_column(Float)
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(100))
    worker_host: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    run_dir: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    tags: Mapped[list[Any]] = mapped_column(default=list)  # short labels, searchable
    note: Mapped[str] = mapped_column(Text, default="")  # the owner's free text

    prototype: Mapped[Prototype | None] = relationship(back_populates="job", uselist=False)
    sweep: Mapped[Sweep | None] = relationship(back_populates="jobs")

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def mark_succeeded(self, steps: int) -> None:
        """The job's row once its results are registered."""
        self.status = JobStatus.succeeded.value
        self.progress = 1.0
        self.step = max(self.step, steps)
        self.phase = "done"
        self.eta_seconds = 0.0
        self.finished_at = utcnow()
        self.error = None


class Prototype(Base):
    """The shared trainable modules of one finished job, over one backbone."""

    __tablename__ = "prototypes"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    backbone_id: Mapped[int] = mapped_column(ForeignKey("backbones.id"))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True
    )
    petl_kind: Mapped[str] = mapped_column(String(16))
    sharing: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column()
    train_config: Mapped[dict[str, Any]] = mapped_column()
    prototype_params: Mapped[int] = mapped_column(BigInteger, default=0)
    backbone_params: Mapped[int | None] = mapped_column(BigInteger)
    storage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_path: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    backbone: Mapped[Backbone] = relationship()
    job: Mapped[Job | None] = relationship(back_populates="prototype")
    #: In the order they were added: the creating job's tasks in its order, then each later
    #: add-job's tasks (`MaskSet.position`).
    mask_sets: Mapped[list[MaskSet]] = relationship(
        back_populates="prototype",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="MaskSet.position",
    )


class MaskSet(Base):
    """The binary masks (and head) of one task over one prototype, and the job that trained
    them (the prototype's creating job, or a later job that added the task onto it)."""

    __tablename__ = "mask_sets"
    __table_args__ = (
        UniqueConstraint("prototype_id", "task_id"),
        UniqueConstraint("prototype_id", "position"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    prototype_id: Mapped[int] = mapped_column(ForeignKey("prototypes.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    #: The job that trained this task's masks and head (None once that job is deleted).
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    #: Order of the task on its prototype: 0, 1, ... in the order tasks were added.
    position: Mapped[int] = mapped_column(Integer, default=0)
    artifact_path: Mapped[str] = mapped_column(String(1000))
    keep_ratio: Mapped[float | None] = mapped_column(Float)
    mask_bits: Mapped[int] = mapped_column(BigInteger, default=0)
    mask_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    density: Mapped[list[Any]] = mapped_column(default=list)
    dev_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The task as the run that trained these masks read it (`TaskInfo`: labels, metrics,
    #: sizes, source). The `Task` row is shared by name, and two users' uploads may share a
    #: name; what a user sees of a task of their prototype comes from here (None: registered
    #: before it was kept; the task folder's task.json still holds its labels).
    task_info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prototype: Mapped[Prototype] = relationship(back_populates="mask_sets")
    task: Mapped[Task] = relationship()
    job: Mapped[Job | None] = relationship(foreign_keys=[job_id])


class MetricPoint(Base):
    """One value of a job's curve; re-reporting the same point after a resume is a no-op."""

    __tablename__ = "metric_points"
    __table_args__ = (UniqueConstraint("job_id", "step", "task", "split", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(300), default="")  # "" = all tasks (train loss)
    split: Mapped[str] = mapped_column(String(16))  # "train" | "dev" | "test"
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    epoch: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
