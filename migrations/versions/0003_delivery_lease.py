"""E-mail delivery leases and stable Message-IDs; Idempotency-Key records.

notification_deliveries gains ``lease_expires_at`` and ``message_id`` and a
partial index over its unfinished rows (what the sweep reads); a ``sending``
row left by an older release gets an already-expired lease, so the first
sweep reclaims it (see ``_adopt_old_rows``). New table ``idempotency_keys``. Runs on PostgreSQL and
SQLite (batch mode).

Revision ID: 0003_delivery_lease
Revises: 0002_auth_sessions
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003_delivery_lease'
down_revision = '0002_auth_sessions'
branch_labels = None
depends_on = None

_OPEN = "status IN ('pending', 'sending')"


def upgrade():
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_notification_deliveries_open', ['status', 'lease_expires_at'], unique=False,
                              postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))
    _adopt_old_rows()

    op.create_table('idempotency_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('notification_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('scope', 'key', name='uq_idempotency_keys_scope_key')
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_created_at', ['created_at'], unique=False)


def _adopt_old_rows():
    """Bring rows of the old state machine into the new one.

    - ``sending`` (stuck for ever before leases): an expired lease, so the
      sweep resends them — unless older than a day: ``failed``, since a
      notification mail that late is noise.
    - ``failed`` with attempts left and not skipped was "waiting for RQ's
      retry" (now ``pending``): ``pending``, if recent (its retry may still
      come; otherwise the sweep re-enqueues it).
    """
    now = datetime.now(timezone.utc)
    t = sa.table('notification_deliveries', sa.column('status', sa.String), sa.column('attempts', sa.Integer),
                 sa.column('last_error', sa.Text), sa.column('updated_at', sa.DateTime(timezone=True)),
                 sa.column('lease_expires_at', sa.DateTime(timezone=True)))
    day_ago, hour_ago = now - timedelta(days=1), now - timedelta(hours=1)
    op.execute(t.update().where(t.c.status == 'sending', t.c.updated_at < day_ago)
               .values(status='failed', last_error='lost: stuck in sending before delivery leases; not resent'))
    op.execute(t.update().where(t.c.status == 'sending').values(lease_expires_at=t.c.updated_at))
    op.execute(t.update().where(t.c.status == 'failed', t.c.attempts < 4, t.c.updated_at >= hour_ago,
                                sa.or_(t.c.last_error.is_(None), ~t.c.last_error.startswith('skipped:')))
               .values(status='pending'))


def downgrade():
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_created_at')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_deliveries_open', postgresql_where=sa.text(_OPEN),
                            sqlite_where=sa.text(_OPEN))
        batch_op.drop_column('message_id')
        batch_op.drop_column('lease_expires_at')
