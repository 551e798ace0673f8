"""Chat retention: indexes for the daily purge of archived conversations.

``ix_conversations_archived_at`` (partial, archived rows only) finds the
conversations archived before the cutoff; ``ix_messages_reply_to``
(partial, replies only) serves the ``ON DELETE SET NULL`` of
``messages.reply_to`` when the purge deletes messages, which otherwise
scans the whole table once per deleted row (services/chat_retention.py).

Revision ID: 0011_chat_retention
Revises: 0010_moderation
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_chat_retention'
down_revision = '0010_moderation'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_conversations_archived_at', 'conversations', ['archived_at'], unique=False,
                    postgresql_where=sa.text('archived_at IS NOT NULL'),
                    sqlite_where=sa.text('archived_at IS NOT NULL'))
    op.create_index('ix_messages_reply_to', 'messages', ['reply_to'], unique=False,
                    postgresql_where=sa.text('reply_to IS NOT NULL'),
                    sqlite_where=sa.text('reply_to IS NOT NULL'))


def downgrade():
    op.drop_index('ix_messages_reply_to', table_name='messages')
    op.drop_index('ix_conversations_archived_at', table_name='conversations')
