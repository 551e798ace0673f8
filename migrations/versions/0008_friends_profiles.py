"""Friends, blocks and profiles a miner owns: friend requests, friendships, blocks, profile fields and images.

Revision ID: 0008_friends_profiles
Revises: 0007_notification_engine
"""
from alembic import op  # noqa: F401

revision = '0008_friends_profiles'
down_revision = '0007_notification_engine'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
