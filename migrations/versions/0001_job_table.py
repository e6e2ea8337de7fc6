"""The job table.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('group', sa.String(), nullable=True),
    sa.Column('task', sa.String(), nullable=False),
    sa.Column('subtask', sa.String(), nullable=True),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('command', sa.JSON(), nullable=False),
    sa.Column('image', sa.String(), nullable=False),
    sa.Column('container_id', sa.String(), nullable=True),
    sa.Column('status', sa.Enum('queued', 'pulling', 'starting', 'running', 'succeeded', 'failed', 'cancelled', 'error', name='jobstatus'), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('mounts', sa.JSON(), nullable=False),
    sa.Column('envs', sa.JSON(), nullable=False),
    sa.Column('docker_options', sa.JSON(), nullable=False),
    sa.Column('gpus', sa.JSON(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_container_id'), ['container_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_id'), ['id'], unique=True)
        batch_op.create_index('ix_job_status_seq', ['status', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_status_seq')
        batch_op.drop_index(batch_op.f('ix_job_id'))
        batch_op.drop_index(batch_op.f('ix_job_container_id'))

    op.drop_table('job')
