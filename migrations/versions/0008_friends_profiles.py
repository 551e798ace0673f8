"""Friends, blocks and profiles a miner owns: friend requests, friendships, blocks, profile fields and images.

One pending request per unordered pair is a partial unique index on
(user_low, user_high); pg_trgm is enabled on PostgreSQL for miner search.
Existing users get a profile row whose ``name_key`` is their lower-cased
display name (new names are folded by ``services/profile_fields.py``).

Revision ID: 0008_friends_profiles
Revises: 0007_notification_engine
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008_friends_profiles'
down_revision = '0007_notification_engine'
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table(
        'friend_requests',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('requester_id', sa.String(length=128), nullable=False),
        sa.Column('recipient_id', sa.String(length=128), nullable=False),
        sa.Column('user_low', sa.String(length=128), nullable=False),
        sa.Column('user_high', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('message', sa.String(length=140), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')",
                           name=op.f('ck_friend_requests_status')),
        sa.CheckConstraint('requester_id <> recipient_id', name=op.f('ck_friend_requests_not_self')),
        sa.CheckConstraint(
            "user_low < user_high AND ((requester_id = user_low AND recipient_id = user_high)"
            " OR (requester_id = user_high AND recipient_id = user_low))",
            name=op.f('ck_friend_requests_pair_ordered')),
        sa.ForeignKeyConstraint(['recipient_id'], ['users.user_id'], name=op.f('fk_friend_requests_recipient_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['requester_id'], ['users.user_id'], name=op.f('fk_friend_requests_requester_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_friend_requests')),
    )
    with op.batch_alter_table('friend_requests', schema=None) as batch_op:
        batch_op.create_index('uq_friend_requests_pending', ['requester_id', 'recipient_id'], unique=True,
                              postgresql_where=_PENDING, sqlite_where=_PENDING)
        batch_op.create_index('uq_friend_requests_pending_pair', ['user_low', 'user_high'], unique=True,
                              postgresql_where=_PENDING, sqlite_where=_PENDING)
        batch_op.create_index('ix_friend_requests_recipient_status_id', ['recipient_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_friend_requests_requester_created', ['requester_id', 'created_at'], unique=False)
        batch_op.create_index('ix_friend_requests_status_created', ['status', 'created_at'], unique=False)

    op.create_table(
        'friendships',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('friend_id', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('user_id <> friend_id', name=op.f('ck_friendships_not_self')),
        sa.ForeignKeyConstraint(['friend_id'], ['users.user_id'], name=op.f('fk_friendships_friend_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_friendships_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'friend_id', name=op.f('pk_friendships')),
    )
    with op.batch_alter_table('friendships', schema=None) as batch_op:
        batch_op.create_index('ix_friendships_friend_id', ['friend_id'], unique=False)

    op.create_table(
        'blocks',
        sa.Column('blocker_id', sa.String(length=128), nullable=False),
        sa.Column('blocked_id', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('blocker_id <> blocked_id', name=op.f('ck_blocks_not_self')),
        sa.ForeignKeyConstraint(['blocked_id'], ['users.user_id'], name=op.f('fk_blocks_blocked_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['blocker_id'], ['users.user_id'], name=op.f('fk_blocks_blocker_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('blocker_id', 'blocked_id', name=op.f('pk_blocks')),
    )
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.create_index('ix_blocks_blocked_id', ['blocked_id'], unique=False)

    op.create_table(
        'user_profiles',
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('name_key', sa.String(length=160), server_default='', nullable=False),
        sa.Column('bio', sa.String(length=280), server_default='', nullable=False),
        sa.Column('pronouns', sa.String(length=30), server_default='', nullable=False),
        sa.Column('location', sa.String(length=60), server_default='', nullable=False),
        sa.Column('avatar_key', sa.String(length=160), nullable=True),
        sa.Column('banner_key', sa.String(length=160), nullable=True),
        sa.Column('visibility', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_user_profiles_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_profiles')),
    )
    with op.batch_alter_table('user_profiles', schema=None) as batch_op:
        batch_op.create_index('ix_user_profiles_name_key', ['name_key'], unique=False)
        batch_op.create_index('ix_user_profiles_name_key_trgm', ['name_key'], unique=False,
                              postgresql_using='gin', postgresql_ops={'name_key': 'gin_trgm_ops'})
    op.create_table(
        'direct_pairs',
        sa.Column('user_low', sa.String(length=128), nullable=False),
        sa.Column('user_high', sa.String(length=128), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.CheckConstraint('user_low < user_high', name=op.f('ck_direct_pairs_pair_ordered')),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_direct_pairs_conversation_id_conversations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_high'], ['users.user_id'], name=op.f('fk_direct_pairs_user_high_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_low'], ['users.user_id'], name=op.f('fk_direct_pairs_user_low_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_low', 'user_high', name=op.f('pk_direct_pairs')),
        sa.UniqueConstraint('conversation_id', name='uq_direct_pairs_conversation_id'),
    )
    op.execute(
        "INSERT INTO user_profiles (user_id, name_key, bio, pronouns, location, visibility, updated_at) "
        "SELECT user_id, lower(display_name), '', '', '', '{}', created_at FROM users"
    )


def downgrade():
    op.drop_table('direct_pairs')
    with op.batch_alter_table('user_profiles', schema=None) as batch_op:
        batch_op.drop_index('ix_user_profiles_name_key_trgm', postgresql_using='gin',
                            postgresql_ops={'name_key': 'gin_trgm_ops'})
        batch_op.drop_index('ix_user_profiles_name_key')
    op.drop_table('user_profiles')
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_blocks_blocked_id')
    op.drop_table('blocks')
    with op.batch_alter_table('friendships', schema=None) as batch_op:
        batch_op.drop_index('ix_friendships_friend_id')
    op.drop_table('friendships')
    with op.batch_alter_table('friend_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_friend_requests_status_created')
        batch_op.drop_index('ix_friend_requests_requester_created')
        batch_op.drop_index('ix_friend_requests_recipient_status_id')
        batch_op.drop_index('uq_friend_requests_pending_pair', postgresql_where=_PENDING, sqlite_where=_PENDING)
        batch_op.drop_index('uq_friend_requests_pending', postgresql_where=_PENDING, sqlite_where=_PENDING)
    op.drop_table('friend_requests')
