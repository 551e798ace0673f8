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
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visibility', sa.String(length=16), server_default='private', nullable=False))
        batch_op.add_column(sa.Column('join_mode', sa.String(length=16), server_default='invite', nullable=False))
        batch_op.add_column(sa.Column('country_code', sa.String(length=2), nullable=True))
        batch_op.create_check_constraint('visibility', "visibility IN ('private', 'listed')")
        batch_op.create_check_constraint('join_mode', "join_mode IN ('invite', 'request')")
        batch_op.create_index('ix_cooperatives_listed_hashrate', ['total_hashrate', 'id'], unique=False,
                              postgresql_where=sa.text("status = 'active' AND visibility = 'listed'"),
                              sqlite_where=sa.text("status = 'active' AND visibility = 'listed'"))
    op.create_table(
        'coop_join_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cooperative_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('message', sa.String(length=280), server_default='', nullable=False),
        sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'approved', 'declined', 'cancelled')",
                           name=op.f('ck_coop_join_requests_status')),
        sa.CheckConstraint('length(message) <= 280', name=op.f('ck_coop_join_requests_message_length')),
        sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'],
                                name=op.f('fk_coop_join_requests_cooperative_id_cooperatives'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.user_id'],
                                name=op.f('fk_coop_join_requests_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['decided_by'], ['users.user_id'],
                                name=op.f('fk_coop_join_requests_decided_by_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_join_requests')),
    )
    op.create_index('ix_coop_join_requests_coop_status_created', 'coop_join_requests',
                    ['cooperative_id', 'status', 'created_at'])
    op.create_index('uq_coop_join_requests_one_pending', 'coop_join_requests', ['cooperative_id', 'user_id'],
                    unique=True, postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_table('coop_join_requests')
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.drop_index('ix_cooperatives_listed_hashrate')
        batch_op.drop_constraint(op.f('ck_cooperatives_join_mode'), type_='check')
        batch_op.drop_constraint(op.f('ck_cooperatives_visibility'), type_='check')
        batch_op.drop_column('country_code')
        batch_op.drop_column('join_mode')
        batch_op.drop_column('visibility')
    op.drop_index('ix_coop_invites_coop_created', table_name='coop_invites')
    op.drop_table('coop_invites')
