"""Coop chat, presence and moderation: conversations, members, messages, reactions, moderation actions, reports.

Revision ID: 0006_chat
Revises: 0005_activity_time_order
"""
from alembic import op

revision = '0006_chat'
down_revision = '0005_activity_time_order'
branch_labels = None
depends_on = None


def upgrade():
    # Moderators (API.md "Coop governance"): the role CHECK admits them.
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cooperative_members_role'), type_='check')
        batch_op.create_check_constraint('role', "role IN ('admin', 'moderator', 'member')")


def downgrade():
    op.execute("UPDATE cooperative_members SET role = 'member' WHERE role = 'moderator'")
    with op.batch_alter_table('cooperative_members', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cooperative_members_role'), type_='check')
        batch_op.create_check_constraint('role', "role IN ('admin', 'member')")
