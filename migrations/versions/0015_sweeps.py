"""Sweeps: the sweep table, and each job's sweep and trial number (tao_server.sweeps).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("owner_uid", sa.Integer(), nullable=True),
        sa.Column("owner_gid", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("launch_config", sa.JSON(), nullable=True),
        sa.Column("launch_config_source", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_sweep_state", "sweep", ["state"])
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch_op.create_index("ix_job_sweep_id", ["sweep_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_sweep_id")
        batch_op.drop_column("trial")
        batch_op.drop_column("sweep_id")
    op.drop_index("ix_sweep_state", table_name="sweep")
    op.drop_table("sweep")
