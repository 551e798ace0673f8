"""Coop moderation: bans, mutes, slow mode, keyword filters, reports and the audit log.

``cooperatives`` gains ``slow_mode_seconds`` (0–3600, CHECK) and
``keyword_filters`` (JSON); new tables ``coop_bans`` and ``coop_mutes`` (one
row per coop and user), ``reports`` (one open report per reporter and target,
one filter report per target, partial index for the 24 h escalation sweep)
and ``coop_audit_log``. ``reports.target_id`` has no foreign key: message
targets live in the chat tables, and a report outlives what it names.

Revision ID: 0010_moderation
Revises: 0009_coop_discovery
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010_moderation'
down_revision = '0009_coop_discovery'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_BIGID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_TS = sa.DateTime(timezone=True)


def _user_fk(table, column, ondelete):
    return sa.ForeignKeyConstraint([column], ['users.user_id'], name=op.f(f'fk_{table}_{column}_users'),
                                   ondelete=ondelete)


def _coop_fk(table):
    return sa.ForeignKeyConstraint(['cooperative_id'], ['cooperatives.id'],
                                   name=op.f(f'fk_{table}_cooperative_id_cooperatives'), ondelete='CASCADE')


def upgrade():
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slow_mode_seconds', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('keyword_filters', _JSON, nullable=True))
        batch_op.create_check_constraint('slow_mode_range', 'slow_mode_seconds >= 0 AND slow_mode_seconds <= 3600')

    op.create_table(
        'coop_bans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cooperative_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.String(length=500), server_default='', nullable=False),
        sa.Column('banned_by', sa.String(length=128), nullable=True),
        sa.Column('created_at', _TS, nullable=False),
        _coop_fk('coop_bans'),
        _user_fk('coop_bans', 'user_id', 'CASCADE'),
        _user_fk('coop_bans', 'banned_by', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_bans')),
        sa.UniqueConstraint('cooperative_id', 'user_id', name='uq_coop_bans_coop_user'),
    )
    op.create_table(
        'coop_mutes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cooperative_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=128), nullable=False),
        sa.Column('until', _TS, nullable=False),
        sa.Column('muted_by', sa.String(length=128), nullable=True),
        sa.Column('created_at', _TS, nullable=False),
        _coop_fk('coop_mutes'),
        _user_fk('coop_mutes', 'user_id', 'CASCADE'),
        _user_fk('coop_mutes', 'muted_by', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_mutes')),
        sa.UniqueConstraint('cooperative_id', 'user_id', name='uq_coop_mutes_coop_user'),
    )
    op.create_table(
        'reports',
        sa.Column('id', _BIGID, nullable=False),
        sa.Column('reporter_user_id', sa.String(length=128), nullable=True),
        sa.Column('cooperative_id', sa.Integer(), nullable=True),
        sa.Column('target_type', sa.String(length=16), nullable=False),
        sa.Column('target_id', sa.String(length=128), nullable=False),
        sa.Column('target_user_id', sa.String(length=128), nullable=True),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('details', sa.String(length=1000), server_default='', nullable=False),
        sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
        sa.Column('resolution', sa.String(length=16), nullable=True),
        sa.Column('note', sa.String(length=500), server_default='', nullable=False),
        sa.Column('resolved_by', sa.String(length=128), nullable=True),
        sa.Column('resolved_at', _TS, nullable=True),
        sa.Column('escalated_at', _TS, nullable=True),
        sa.Column('created_at', _TS, nullable=False),
        sa.CheckConstraint("target_type IN ('message', 'user', 'cooperative')", name=op.f('ck_reports_target_type')),
        sa.CheckConstraint("reason IN ('spam', 'abuse', 'other', 'flagged')", name=op.f('ck_reports_reason')),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f('ck_reports_status')),
        sa.CheckConstraint("resolution IS NULL OR resolution IN ('dismiss', 'delete_message', 'mute', 'ban')",
                           name=op.f('ck_reports_resolution')),
        sa.CheckConstraint("(status = 'open') = (resolved_at IS NULL)", name=op.f('ck_reports_resolved_when_closed')),
        _coop_fk('reports'),
        _user_fk('reports', 'reporter_user_id', 'SET NULL'),
        _user_fk('reports', 'resolved_by', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index('uq_reports_open_per_reporter', ['reporter_user_id', 'target_type', 'target_id'],
                              unique=True,
                              postgresql_where=sa.text("status = 'open' AND reporter_user_id IS NOT NULL"),
                              sqlite_where=sa.text("status = 'open' AND reporter_user_id IS NOT NULL"))
        batch_op.create_index('uq_reports_flag_per_target', ['target_type', 'target_id'], unique=True,
                              postgresql_where=sa.text("reason = 'flagged'"),
                              sqlite_where=sa.text("reason = 'flagged'"))
        batch_op.create_index('ix_reports_coop_status_id', ['cooperative_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_reports_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_reports_unescalated', ['created_at'], unique=False,
                              postgresql_where=sa.text("status = 'open' AND escalated_at IS NULL"),
                              sqlite_where=sa.text("status = 'open' AND escalated_at IS NULL"))
    op.create_table(
        'coop_audit_log',
        sa.Column('id', _BIGID, nullable=False),
        sa.Column('cooperative_id', sa.Integer(), nullable=False),
        sa.Column('actor_user_id', sa.String(length=128), nullable=True),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('target_user_id', sa.String(length=128), nullable=True),
        sa.Column('target_id', sa.String(length=128), nullable=True),
        sa.Column('data', _JSON, nullable=True),
        sa.Column('created_at', _TS, nullable=False),
        sa.CheckConstraint(
            "action IN ('role_changed', 'admin_transferred', 'member_removed', 'banned', 'unbanned', 'muted', "
            "'unmuted', 'message_deleted', 'slow_mode_changed', 'filters_changed', 'report_resolved')",
            name=op.f('ck_coop_audit_log_action')),
        _coop_fk('coop_audit_log'),
        _user_fk('coop_audit_log', 'actor_user_id', 'SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_coop_audit_log')),
    )
    with op.batch_alter_table('coop_audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_coop_audit_log_coop_id', ['cooperative_id', 'id'], unique=False)


def downgrade():
    op.drop_table('coop_audit_log')
    op.drop_table('reports')
    op.drop_table('coop_mutes')
    op.drop_table('coop_bans')
    with op.batch_alter_table('cooperatives', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cooperatives_slow_mode_range'), type_='check')
        batch_op.drop_column('keyword_filters')
        batch_op.drop_column('slow_mode_seconds')
