"""The activity feed in time order: indexes for the keyset on (created_at, id).

The feed is read newest first by when an entry happened (``created_at``, the
event's time for mining entries), not by recording order, so it pages on
``(user_id, created_at, id)`` and, filtered, on
``(user_id, activity_type, created_at, id)``, which replaces
``(user_id, activity_type, id)``. ``(user_id, id)`` stays for the live poll.

Revision ID: 0005_activity_time_order
Revises: 0004_notification_seq
"""
from alembic import op

revision = '0005_activity_time_order'
down_revision = '0004_notification_seq'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_activity', schema=None) as batch_op:
        batch_op.create_index('ix_user_activity_user_created_id', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_user_activity_user_type_created_id',
                              ['user_id', 'activity_type', 'created_at', 'id'], unique=False)
        batch_op.drop_index('ix_user_activity_user_type_id')


def downgrade():
    with op.batch_alter_table('user_activity', schema=None) as batch_op:
        batch_op.create_index('ix_user_activity_user_type_id', ['user_id', 'activity_type', 'id'], unique=False)
        batch_op.drop_index('ix_user_activity_user_type_created_id')
        batch_op.drop_index('ix_user_activity_user_created_id')
