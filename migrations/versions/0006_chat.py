"""Coop chat, presence and moderation: conversations, members, messages, reactions, moderation actions, reports.

Revision ID: 0006_chat
Revises: 0005_activity_time_order
"""
from alembic import op  # noqa: F401

revision = '0006_chat'
down_revision = '0005_activity_time_order'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
