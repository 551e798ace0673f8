"""Coop invites, directory, join requests and rankings.

Revision ID: 0009_coop_discovery
Revises: 0008_friends_profiles
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_coop_discovery'
down_revision = '0008_friends_profiles'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'coop_invites',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cooperative_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=8), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('max_uses', sa.Integer(), nullable=True),
        sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('length(code) = 8 AND code = upper(code)', name=op.f('ck_coop_invites_code_format')),
        sa.CheckConstraint('max_uses IS NULL OR (max_uses >= 1 AND max_uses <= 100)',
                           name=op.f('ck_coop_invites_max_uses_range')),
        sa.CheckConstraint('uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)',
                           name=op.f('ck_coop_invites_uses_range')),
        sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'],
                                name=op.f('fk_coop_invites_cooperative_id_cooperatives'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by'], ['users.user_id'],
                                name=op.f('fk_coop_invites_created_by_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_invites')),
        sa.UniqueConstraint('code', name=op.f('uq_coop_invites_code')),
    )
    op.create_index('ix_coop_invites_coop_created', 'coop_invites', ['cooperative_id', 'created_at'])


def downgrade():
    op.drop_index('ix_coop_invites_coop_created', table_name='coop_invites')
    op.drop_table('coop_invites')
