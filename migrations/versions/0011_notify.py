"""Notifications: the URLs each job notifies, each user's defaults and signing secret, and the outbox of deliveries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_urls", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "notify_delivery",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("owner_uid", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_try_at", sa.Float(), nullable=False),
        sa.Column("last_try_at", sa.Float(), nullable=True),
        sa.Column("last_result", sa.String(), nullable=True),
        sa.UniqueConstraint("job_id", "attempt", "event", "url", name="uq_notify_delivery_once"),
    )
    op.create_index("ix_notify_delivery_due", "notify_delivery", ["state", "next_try_at"])
    op.create_table(
        "notify_default",
        sa.Column("owner_uid", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "notify_secret",
        sa.Column("owner_uid", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notify_secret")
    op.drop_table("notify_default")
    op.drop_index("ix_notify_delivery_due", table_name="notify_delivery")
    op.drop_table("notify_delivery")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("notify_urls")
