"""Notification sequences: a per-user ``seq`` in commit order for socket catch-up.

Adds ``notification_sequences`` (one counter row per user) and
``notifications.seq`` / ``seq_floor`` with a unique (user_id, seq). Existing
rows are numbered per user in id order (they were all committed long ago, so
id order is as good as any) and each counter starts at its user's last seq.

Runs on PostgreSQL and SQLite (batch mode; ``UPDATE … FROM`` needs SQLite
3.33 or later).

Revision ID: 0004_notification_seq
Revises: 0003_delivery_lease
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_notification_seq'
down_revision = '0003_delivery_lease'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notification_sequences',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.CheckConstraint('last_seq >= 0', name=op.f('ck_notification_sequences_last_seq_not_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], name=op.f('fk_notification_sequences_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_sequences'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('seq_floor', sa.BigInteger(), nullable=True))

    op.execute(
        "UPDATE notifications SET seq = numbered.n, seq_floor = numbered.n - 1 "
        "FROM (SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS n FROM notifications) AS numbered "
        "WHERE notifications.id = numbered.id"
    )
    op.execute(
        "INSERT INTO notification_sequences (user_id, last_seq) "
        "SELECT user_id, max(seq) FROM notifications GROUP BY user_id"
    )

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_notifications_user_seq', ['user_id', 'seq'])


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint('uq_notifications_user_seq', type_='unique')
        batch_op.drop_column('seq_floor')
        batch_op.drop_column('seq')

    op.drop_table('notification_sequences')
