"""Training progress: the job's status file followed (where it has got to), its progress, its metric series.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_file", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress_unavailable", sa.String(), nullable=True))
    op.create_table(
        "job_progress",
        sa.Column("job_id", sa.String(length=64), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
    )
    op.create_table(
        "job_metric",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("series", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False, server_default="-1"),
        sa.Column("step", sa.Integer(), nullable=False, server_default="-1"),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.UniqueConstraint("job_id", "series", "epoch", "step", name="uq_job_metric_point"),
    )


def downgrade() -> None:
    op.drop_table("job_metric")
    op.drop_table("job_progress")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("progress_unavailable")
        batch_op.drop_column("progress")
        batch_op.drop_column("status_file")
