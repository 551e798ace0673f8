"""Notification engine: quiet hours, digests, caps, grouping, Web Push subscriptions and delivery attempts.

- ``notifications.group_key`` and its index (grouped listing);
- ``notification_deliveries``: channel ``push``, status ``held`` (waiting for
  a summary mail), ``summary_id``, and a partial index over held rows;
- new tables ``push_subscriptions``, ``delivery_attempts``, ``email_summaries``;
- ``worker_status.offline_notified_at`` (offline notices at most hourly);
- ``broadcasts.cursor`` and ``heartbeat_at`` (a stopped fan-out resumes).

Runs on PostgreSQL and SQLite (batch mode for the ALTERs).

Revision ID: 0007_notification_engine
Revises: 0006_chat
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_notification_engine'
down_revision = '0006_chat'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_HELD = "status = 'held'"


def upgrade():
    op.create_table('email_summaries',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='sending', nullable=False),
    sa.Column('item_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('held', 'digest')", name=op.f('ck_email_summaries_kind')),
    sa.CheckConstraint("status IN ('sending', 'sent', 'failed')", name=op.f('ck_email_summaries_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_email_summaries_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_summaries'))
    )
    with op.batch_alter_table('email_summaries', schema=None) as batch_op:
        batch_op.create_index('ix_email_summaries_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('push_subscriptions',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('endpoint', sa.String(length=1024), nullable=False),
    sa.Column('p256dh', sa.String(length=128), nullable=False),
    sa.Column('auth', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_push_subscriptions_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
    sa.UniqueConstraint('endpoint', name='uq_push_subscriptions_endpoint')
    )
    with op.batch_alter_table('push_subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_push_subscriptions_user_id', ['user_id'], unique=False)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_key', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_notifications_user_group_id', ['user_id', 'group_key', 'id'], unique=False)

    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_notification_deliveries_channel'), type_='check')
        batch_op.create_check_constraint('channel', "channel IN ('email', 'push')")
        batch_op.drop_constraint(op.f('ck_notification_deliveries_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('pending', 'sending', 'sent', 'failed', 'held')")
        batch_op.add_column(sa.Column('summary_id', sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_notification_deliveries_summary_id_email_summaries'),
                                    'email_summaries', ['summary_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_notification_deliveries_held', ['notification_id'], unique=False,
                              postgresql_where=sa.text(_HELD), sqlite_where=sa.text(_HELD))

    op.create_table('delivery_attempts',
    sa.Column('id', _BIG_ID, nullable=False),
    sa.Column('delivery_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('email', 'push')", name=op.f('ck_delivery_attempts_channel')),
    sa.CheckConstraint("status IN ('sent', 'failed')", name=op.f('ck_delivery_attempts_status')),
    sa.ForeignKeyConstraint(['delivery_id'], ['notification_deliveries.id'],
                            name=op.f('fk_delivery_attempts_delivery_id_notification_deliveries'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_attempts_delivery_id', ['delivery_id'], unique=False)
        batch_op.create_index('ix_delivery_attempts_channel_status_created', ['channel', 'status', 'created_at'],
                              unique=False)

    with op.batch_alter_table('worker_status', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offline_notified_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cursor', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('cursor')
    with op.batch_alter_table('worker_status', schema=None) as batch_op:
        batch_op.drop_column('offline_notified_at')
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_attempts_channel_status_created')
        batch_op.drop_index('ix_delivery_attempts_delivery_id')
    op.drop_table('delivery_attempts')
    op.execute("DELETE FROM notification_deliveries WHERE channel = 'push'")
    op.execute("UPDATE notification_deliveries SET status = 'failed', last_error = 'held mail dropped by a "
               "downgrade' WHERE status = 'held'")
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_deliveries_held', postgresql_where=sa.text(_HELD),
                            sqlite_where=sa.text(_HELD))
        batch_op.drop_constraint(op.f('fk_notification_deliveries_summary_id_email_summaries'), type_='foreignkey')
        batch_op.drop_column('summary_id')
        batch_op.drop_constraint(op.f('ck_notification_deliveries_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('pending', 'sending', 'sent', 'failed')")
        batch_op.drop_constraint(op.f('ck_notification_deliveries_channel'), type_='check')
        batch_op.create_check_constraint('channel', "channel IN ('email')")
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_group_id')
        batch_op.drop_column('group_key')
    with op.batch_alter_table('push_subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_push_subscriptions_user_id')
    op.drop_table('push_subscriptions')
    with op.batch_alter_table('email_summaries', schema=None) as batch_op:
        batch_op.drop_index('ix_email_summaries_user_created')
    op.drop_table('email_summaries')
