"""Workflows: dependencies between jobs, pipelines of steps, and retries.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09
"""
from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pipeline_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("step", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("attempt_offsets", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index("ix_job_pipeline_id", ["pipeline_id"])
    op.create_table(
        "job_dependency",
        sa.Column("job_id", sa.String(length=64), primary_key=True),
        sa.Column("after_id", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=8), nullable=False, server_default="ok"),
    )
    op.create_index("ix_job_dependency_after_id", "job_dependency", ["after_id"])
    op.create_table(
        "pipeline",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("owner_uid", sa.Integer(), nullable=True),
        sa.Column("owner_gid", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(), nullable=False, server_default=""),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pipeline")
    op.drop_index("ix_job_dependency_after_id", table_name="job_dependency")
    op.drop_table("job_dependency")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_pipeline_id")
        batch_op.drop_column("attempt_offsets")
        batch_op.drop_column("attempt")
        batch_op.drop_column("retries")
        batch_op.drop_column("step")
        batch_op.drop_column("pipeline_id")
