"""mask set task info: the task as the run that trained the masks read it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000

The `tasks` row is one per name, and two users' uploads may share a name: its labels, sizes
and metrics were those of whichever run finished last. `mask_sets.task_info` keeps each run's
own. Existing rows stay NULL (the shared row may be another user's); their task folder's
task.json still holds their labels.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mask_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task_info", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mask_sets", schema=None) as batch_op:
        batch_op.drop_column("task_info")
