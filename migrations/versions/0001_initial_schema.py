"""Initial schema: every table of DESIGN.md with its constraints.

Runs on PostgreSQL and SQLite (batch mode for SQLite, partial indexes on both).

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 09:01:29.214707

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('miner_stats',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('total_shares', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rejected_shares', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('best_difficulty', sa.Float(), server_default='0', nullable=False),
    sa.Column('best_difficulty_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('blocks_found', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_share_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_miner_stats'))
    )
    op.create_table('mining_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mining_events')),
    sa.UniqueConstraint('stream', 'entry_id', name='uq_mining_events_stream_entry')
    )
    with op.batch_alter_table('mining_events', schema=None) as batch_op:
        batch_op.create_index('ix_mining_events_ts', ['ts'], unique=False)
        batch_op.create_index('ix_mining_events_user_event_ts', ['user_id', 'event', 'ts'], unique=False)

    op.create_table('users',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('avatar_url', sa.String(length=512), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('is_admin', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users'))
    )
    op.create_table('worker_status',
    sa.Column('worker', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('is_online', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sample_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hashrate_1m', sa.Float(), server_default='0', nullable=False),
    sa.Column('hashrate_5m', sa.Float(), server_default='0', nullable=False),
    sa.Column('hashrate_1h', sa.Float(), server_default='0', nullable=False),
    sa.Column('hashrate_1d', sa.Float(), server_default='0', nullable=False),
    sa.Column('last_share_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('useragent', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('worker', name=op.f('pk_worker_status'))
    )
    with op.batch_alter_table('worker_status', schema=None) as batch_op:
        batch_op.create_index('ix_worker_status_user_online', ['user_id', 'is_online'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('actor_user_id', sa.String(length=128), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.user_id'], name=op.f('fk_audit_log_actor_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_created_at', ['created_at'], unique=False)

    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_user_id', sa.String(length=128), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('link', sa.String(length=512), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('total', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_broadcasts_status')),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.user_id'], name=op.f('fk_broadcasts_actor_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    op.create_table('cooperatives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), server_default='', nullable=False),
    sa.Column('invite_code', sa.String(length=8), nullable=False),
    sa.Column('admin_user_id', sa.String(length=128), nullable=True),
    sa.Column('member_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('total_hashrate', sa.Float(), server_default='0', nullable=False),
    sa.Column('hashrate_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dissolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'dissolved')", name=op.f('ck_cooperatives_status')),
    sa.CheckConstraint('length(invite_code) = 8 AND invite_code = upper(invite_code)', name=op.f('ck_cooperatives_invite_code_format')),
    sa.CheckConstraint('member_count >= 0 AND member_count <= 20', name=op.f('ck_cooperatives_member_count_range')),
    sa.ForeignKeyConstraint(['admin_user_id'], ['users.user_id'], name=op.f('fk_cooperatives_admin_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cooperatives'))
    )
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.create_index('ix_cooperatives_status_name', ['status', 'name'], unique=False)
        batch_op.create_index('uq_cooperatives_active_invite_code', ['invite_code'], unique=True, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('subtype', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.Column('link', sa.String(length=512), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('is_read', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("category IN ('mining', 'gamification', 'competition', 'social', 'system')", name=op.f('ck_notifications_category')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_notifications_unread', ['user_id', 'id'], unique=False, postgresql_where=sa.text('is_read = false'), sqlite_where=sa.text('is_read = 0'))
        batch_op.create_index('ix_notifications_user_category_id', ['user_id', 'category', 'id'], unique=False)
        batch_op.create_index('ix_notifications_user_id_id', ['user_id', 'id'], unique=False)

    op.create_table('user_activity',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('activity_type', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('link', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("activity_type IN ('share_submitted', 'block_found', 'badge_earned', 'level_up', 'streak_milestone', 'game_played', 'lottery_rank', 'coop_joined', 'coop_left', 'competition_registered', 'match_completed', 'lesson_completed', 'track_completed', 'settings_updated')", name=op.f('ck_user_activity_activity_type')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_user_activity_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_activity'))
    )
    with op.batch_alter_table('user_activity', schema=None) as batch_op:
        batch_op.create_index('ix_user_activity_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_user_activity_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index('ix_user_activity_user_type_id', ['user_id', 'activity_type', 'id'], unique=False)

    op.create_table('user_settings',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('privacy', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('notifications', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_user_settings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_settings'))
    )
    op.create_table('coop_hashrate_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cooperative_id', sa.Integer(), nullable=False),
    sa.Column('total_hashrate', sa.Float(), nullable=False),
    sa.Column('online_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'], name=op.f('fk_coop_hashrate_samples_cooperative_id_cooperatives'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_hashrate_samples'))
    )
    with op.batch_alter_table('coop_hashrate_samples', schema=None) as batch_op:
        batch_op.create_index('ix_coop_hashrate_samples_coop_time', ['cooperative_id', 'computed_at'], unique=False)

    op.create_table('cooperative_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cooperative_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), server_default='member', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'member')", name=op.f('ck_cooperative_members_role')),
    sa.CheckConstraint("status IN ('active', 'left', 'removed')", name=op.f('ck_cooperative_members_status')),
    sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'], name=op.f('fk_cooperative_members_cooperative_id_cooperatives'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_cooperative_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cooperative_members'))
    )
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.create_index('ix_cooperative_members_coop_status_joined', ['cooperative_id', 'status', 'joined_at'], unique=False)
        batch_op.create_index('uq_cooperative_members_one_active_per_user', ['user_id'], unique=True, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.create_index('uq_cooperative_members_one_admin_per_coop', ['cooperative_id'], unique=True, postgresql_where=sa.text("status = 'active' AND role = 'admin'"), sqlite_where=sa.text("status = 'active' AND role = 'admin'"))

    op.create_table('notification_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('notification_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('email')", name=op.f('ck_notification_deliveries_channel')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name=op.f('ck_notification_deliveries_status')),
    sa.ForeignKeyConstraint(['notification_id'], ['notifications.id'], name=op.f('fk_notification_deliveries_notification_id_notifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
    sa.UniqueConstraint('notification_id', 'channel', name='uq_notification_deliveries_notification_channel')
    )



def downgrade():
    
    op.drop_table('notification_deliveries')
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.drop_index('uq_cooperative_members_one_admin_per_coop', postgresql_where=sa.text("status = 'active' AND role = 'admin'"), sqlite_where=sa.text("status = 'active' AND role = 'admin'"))
        batch_op.drop_index('uq_cooperative_members_one_active_per_user', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.drop_index('ix_cooperative_members_coop_status_joined')

    op.drop_table('cooperative_members')
    with op.batch_alter_table('coop_hashrate_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_coop_hashrate_samples_coop_time')

    op.drop_table('coop_hashrate_samples')
    op.drop_table('user_settings')
    with op.batch_alter_table('user_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_user_activity_user_type_id')
        batch_op.drop_index('ix_user_activity_user_id_id')
        batch_op.drop_index('ix_user_activity_created_at')

    op.drop_table('user_activity')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_id_id')
        batch_op.drop_index('ix_notifications_user_category_id')
        batch_op.drop_index('ix_notifications_unread', postgresql_where=sa.text('is_read = false'), sqlite_where=sa.text('is_read = 0'))
        batch_op.drop_index('ix_notifications_created_at')

    op.drop_table('notifications')
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.drop_index('uq_cooperatives_active_invite_code', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.drop_index('ix_cooperatives_status_name')

    op.drop_table('cooperatives')
    op.drop_table('broadcasts')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_created_at')

    op.drop_table('audit_log')
    with op.batch_alter_table('worker_status', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_status_user_online')

    op.drop_table('worker_status')
    op.drop_table('users')
    with op.batch_alter_table('mining_events', schema=None) as batch_op:
        batch_op.drop_index('ix_mining_events_user_event_ts')
        batch_op.drop_index('ix_mining_events_ts')

    op.drop_table('mining_events')
    op.drop_table('miner_stats')

