"""Coop invites, directory, join requests and rankings.

Revision ID: 0009_coop_discovery
Revises: 0008_friends_profiles
"""
from alembic import op  # noqa: F401

revision = '0009_coop_discovery'
down_revision = '0008_friends_profiles'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
