"""task history: each mask set records the job that trained it and its position on the prototype

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:00:00.000000

Prototypes grow: a later job may add tasks onto a registered prototype. `mask_sets.job_id`
names the job that trained the task (existing rows: the prototype's creating job) and
`mask_sets.position` orders a prototype's tasks as they were added (existing rows: by id, the
creating job's task order). (prototype_id, position) is unique, so two add-jobs finishing at
once cannot take the same place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mask_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE mask_sets SET job_id = (SELECT prototypes.job_id FROM prototypes "
            "WHERE prototypes.id = mask_sets.prototype_id)"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE mask_sets SET position = (SELECT count(*) FROM mask_sets AS earlier "
            "WHERE earlier.prototype_id = mask_sets.prototype_id AND earlier.id < mask_sets.id)"
        )
    )
    with op.batch_alter_table("mask_sets", schema=None) as batch_op:
        batch_op.alter_column("position", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f("ix_mask_sets_job_id"), ["job_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_mask_sets_job_id_jobs"), "jobs", ["job_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_mask_sets_prototype_id_position"), ["prototype_id", "position"]
        )


def downgrade() -> None:
    with op.batch_alter_table("mask_sets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_mask_sets_prototype_id_position"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_mask_sets_job_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_mask_sets_job_id"))
        batch_op.drop_column("position")
        batch_op.drop_column("job_id")
