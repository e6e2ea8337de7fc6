"""What a job asked of the GPUs, apart from the devices it was given.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_request", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("gpu_request")
