"""Reports: ``reported_body``, a message report's words as they stood when
it was filed, so a later edit or delete cannot change what the moderators
read. Existing reports keep NULL (the page then shows the message as it is).

Revision ID: 0013_report_body
Revises: 0012_members_version
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_report_body'
down_revision = '0012_members_version'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports') as batch:
        batch.add_column(sa.Column('reported_body', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('reports') as batch:
        batch.drop_column('reported_body')
