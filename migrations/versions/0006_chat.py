"""Coop chat, presence and moderation: conversations, members, messages, reactions, moderation actions, reports.

The role CHECK admits moderators. Then the messaging core: conversations
(one live per coop), their members, messages numbered per conversation
(unique (conversation_id, seq), the paging index) and reactions. Every
active coop gets its conversation, with its active members, so the chat
exists for coops founded before this revision.

Revision ID: 0006_chat
Revises: 0005_activity_time_order
"""
from alembic import op
import sqlalchemy as sa

# models.REACTION_EMOJI when this revision was written (a migration is frozen).
REACTION_EMOJI = ("\U0001F44D", "\U0001F602", "\U0001F62E", "\U0001F622", "\U0001F389", "\U0001F525",
                  "\U0001F680", "\U0001F48E")

revision = '0006_chat'
down_revision = '0005_activity_time_order'
branch_labels = None
depends_on = None


def upgrade():
    # Moderators (API.md "Coop governance"): the role CHECK admits them.
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cooperative_members_role'), type_='check')
        batch_op.create_check_constraint('role', "role IN ('admin', 'moderator', 'member')")

    emoji = ", ".join(f"'{e}'" for e in REACTION_EMOJI)
    op.create_table('conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=True),
    sa.Column('cooperative_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('coop', 'direct', 'group')", name=op.f('ck_conversations_kind')),
    sa.CheckConstraint("(kind = 'coop') = (cooperative_id IS NOT NULL)", name=op.f('ck_conversations_coop_kind_has_coop')),
    sa.CheckConstraint('last_seq >= 0', name=op.f('ck_conversations_last_seq_not_negative')),
    sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'], name=op.f('fk_conversations_cooperative_id_cooperatives'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.user_id'], name=op.f('fk_conversations_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations'))
    )
    op.create_index('uq_conversations_active_coop', 'conversations', ['cooperative_id'], unique=True,
                    postgresql_where=sa.text('cooperative_id IS NOT NULL AND archived_at IS NULL'),
                    sqlite_where=sa.text('cooperative_id IS NOT NULL AND archived_at IS NULL'))
    op.create_table('conversation_members',
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), server_default='member', nullable=False),
    sa.Column('last_read_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unread_notified', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('owner', 'member')", name=op.f('ck_conversation_members_role')),
    sa.CheckConstraint('last_read_seq >= 0', name=op.f('ck_conversation_members_last_read_seq_not_negative')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_members_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_conversation_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'user_id', name=op.f('pk_conversation_members'))
    )
    op.create_index('ix_conversation_members_user_active', 'conversation_members', ['user_id'], unique=False,
                    postgresql_where=sa.text('left_at IS NULL'), sqlite_where=sa.text('left_at IS NULL'))
    op.create_table('messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('sender_id', sa.String(length=128), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('mentions', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('reply_to', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_messages_seq_positive')),
    sa.CheckConstraint('body IS NULL OR length(body) BETWEEN 1 AND 2000', name=op.f('ck_messages_body_length')),
    sa.CheckConstraint('(body IS NULL) = (deleted_at IS NOT NULL)', name=op.f('ck_messages_tombstone_has_no_body')),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_messages_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reply_to'], ['messages.id'], name=op.f('fk_messages_reply_to_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sender_id'], ['users.user_id'], name=op.f('fk_messages_sender_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('conversation_id', 'seq', name='uq_messages_conversation_seq')
    )
    op.create_index('uq_messages_sender_client_id', 'messages', ['sender_id', 'client_id'], unique=True,
                    postgresql_where=sa.text('client_id IS NOT NULL'), sqlite_where=sa.text('client_id IS NOT NULL'))
    op.create_table('message_reactions',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('emoji', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f'emoji IN ({emoji})', name=op.f('ck_message_reactions_emoji')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_reactions_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_message_reactions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'user_id', 'emoji', name=op.f('pk_message_reactions'))
    )

    # Backfill: every active coop's conversation, with its active members.
    op.execute(
        "INSERT INTO conversations (kind, cooperative_id, last_seq, created_at) "
        "SELECT 'coop', id, 0, created_at FROM cooperatives WHERE status = 'active'"
    )
    op.execute(
        "INSERT INTO conversation_members (conversation_id, user_id, role, last_read_seq, unread_notified, joined_at) "
        "SELECT c.id, m.user_id, 'member', 0, false, m.joined_at FROM conversations c "
        "JOIN cooperative_members m ON m.cooperative_id = c.cooperative_id AND m.status = 'active'"
    )


def downgrade():
    op.drop_table('message_reactions')
    op.drop_index('uq_messages_sender_client_id', table_name='messages')
    op.drop_table('messages')
    op.drop_index('ix_conversation_members_user_active', table_name='conversation_members')
    op.drop_table('conversation_members')
    op.drop_index('uq_conversations_active_coop', table_name='conversations')
    op.drop_table('conversations')
    op.execute("UPDATE cooperative_members SET role = 'member' WHERE role = 'moderator'")
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cooperative_members_role'), type_='check')
        batch_op.create_check_constraint('role', "role IN ('admin', 'member')")
