"""Notification engine: quiet hours, digests, caps, grouping, Web Push subscriptions and delivery attempts.

Revision ID: 0007_notification_engine
Revises: 0006_chat
"""
from alembic import op  # noqa: F401

revision = '0007_notification_engine'
down_revision = '0006_chat'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
