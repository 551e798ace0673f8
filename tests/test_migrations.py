"""Migrations build the schema the models describe, on PostgreSQL and SQLite."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from webapp import create_app
from webapp.extensions import db

from .conftest import base_config, fresh_database


def _diff(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


@pytest.mark.slow
def test_upgrade_on_fresh_postgresql_matches_models(services):
    with fresh_database(services, "webapp_mig") as url:
        app = create_app(base_config(services, SQLALCHEMY_DATABASE_URI=url))
        with app.app_context():
            upgrade()
            tables = set(sa.inspect(db.engine).get_table_names())
        assert {t.name for t in db.metadata.sorted_tables} | {"alembic_version"} == tables
        assert _diff(app) == []
        with app.app_context():
            db.engine.dispose()


def test_upgrade_on_fresh_sqlite_matches_models(tmp_path):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}",
                      "REDIS_URL": "", "SECRET_KEY": "x"})
    with app.app_context():
        upgrade()
    assert _diff(app) == []


def test_database_enforces_invariants(app):
    """The CHECKs and partial unique indexes exist in the database itself."""
    from sqlalchemy.exc import IntegrityError

    from webapp.models import Cooperative, Notification

    from . import builders

    user = builders.make_user()
    db.session.add(Notification(user_id=user.user_id, category="nonsense", subtype="x", title="t"))
    try:
        db.session.commit()
        raise AssertionError("category CHECK missing")
    except IntegrityError:
        db.session.rollback()
    db.session.add(Cooperative(name="A", invite_code="ABCDEFGH", member_count=21, admin_user_id=user.user_id))
    try:
        db.session.commit()
        raise AssertionError("member_count CHECK missing")
    except IntegrityError:
        db.session.rollback()
    db.session.add(Cooperative(name="A", invite_code="ABCDEFGH", admin_user_id=user.user_id))
    db.session.add(Cooperative(name="B", invite_code="ABCDEFGH", admin_user_id=user.user_id))
    try:
        db.session.commit()
        raise AssertionError("unique active invite code missing")
    except IntegrityError:
        db.session.rollback()
