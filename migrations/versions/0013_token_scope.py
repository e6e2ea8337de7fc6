"""Token scopes: a token for scraping GET /metrics only, which acts as no account (uid and gid null).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), nullable=False, server_default="api"))
        batch_op.alter_column("uid", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("gid", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Scrape tokens act as no account: a schema without scopes would make them API tokens, so they go.
    op.execute("DELETE FROM api_token WHERE scope != 'api'")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.alter_column("gid", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("uid", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("scope")
