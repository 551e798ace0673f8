"""Conversations: ``members_version``, bumped by every membership write.

A post reads the member list before it takes its number; when the
conversation's ``members_version`` is still the one it read, that list is
the current one and the post numbers, inserts and reads the members in one
statement (services/messages.py). Existing rows start at 0.

Revision ID: 0012_members_version
Revises: 0011_chat_retention
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_members_version'
down_revision = '0011_chat_retention'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations') as batch:
        batch.add_column(sa.Column('members_version', sa.BigInteger(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('conversations') as batch:
        batch.drop_column('members_version')
