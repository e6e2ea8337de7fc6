"""Who submitted each job: the caller's uid and gid from the Unix socket.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_uid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_gid", sa.Integer(), nullable=True))
        batch_op.create_index("ix_job_owner_seq", ["owner_uid", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_owner_seq")
        batch_op.drop_column("owner_gid")
        batch_op.drop_column("owner_uid")
