"""``transactions.after_commit`` / ``before_commit``: run at the outermost
commit, dropped on rollback, savepoints respected."""
from __future__ import annotations

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import User
from webapp.services import transactions


def _write(user_id: str) -> None:
    """Open a transaction (autobegin) that really writes something."""
    db.session.add(User(user_id=user_id, display_name=user_id, password_hash="x"))
    db.session.flush()


def test_after_commit_runs_after_the_commit_not_before(app):
    seen = []
    _write("tx-a")
    transactions.after_commit(lambda: seen.append("after"))
    assert seen == [] and transactions.pending() == 1
    db.session.commit()
    assert seen == ["after"] and transactions.pending() == 0
    db.session.commit()  # a later commit runs nothing again
    assert seen == ["after"]


def test_after_commit_sees_committed_data(app):
    seen = []
    _write("tx-b")

    def check():
        with app.app_context():  # a session of its own: the row is visible
            seen.append(db.session.scalar(select(User.user_id).where(User.user_id == "tx-b")))

    transactions.after_commit(check)
    db.session.commit()
    assert seen == ["tx-b"]


def test_a_rollback_drops_every_callback(app):
    seen = []
    _write("tx-c")
    transactions.after_commit(lambda: seen.append("after"))
    transactions.before_commit(lambda: seen.append("before"))
    db.session.rollback()
    db.session.commit()
    assert seen == [] and transactions.pending() == 0


def test_outside_a_transaction_the_callback_runs_at_once(app):
    db.session.commit()
    seen = []
    transactions.after_commit(lambda: seen.append(1))
    assert seen == [1]


def test_a_rolled_back_savepoint_drops_only_its_callbacks(app):
    seen = []
    _write("tx-d")
    transactions.after_commit(lambda: seen.append("outer"))
    with db.session.begin_nested() as savepoint:
        transactions.after_commit(lambda: seen.append("inner"))
        with db.session.begin_nested() as deeper:  # released, then its parent rolls back
            transactions.after_commit(lambda: seen.append("deeper"))
            deeper.commit()
        savepoint.rollback()
    with db.session.begin_nested():  # released: waits for the outer commit
        transactions.after_commit(lambda: seen.append("kept"))
    assert seen == []
    db.session.commit()
    assert seen == ["outer", "kept"]


def test_before_commit_runs_in_the_transaction_and_may_add_after_callbacks(app):
    seen = []
    _write("tx-e")

    def prepare():
        count = db.session.scalar(select(User.user_id).where(User.user_id == "tx-e"))
        seen.append(("before", count))
        transactions.after_commit(lambda: seen.append("after"))

    transactions.before_commit(prepare)
    with db.session.begin_nested():
        pass  # releasing a savepoint is not the commit
    assert seen == []
    db.session.commit()
    assert seen == [("before", "tx-e"), "after"]


def test_a_failing_after_callback_does_not_stop_the_others(app):
    seen = []
    _write("tx-f")
    transactions.after_commit(lambda: 1 / 0)
    transactions.after_commit(lambda: seen.append("second"))
    db.session.commit()
    assert seen == ["second"]
    assert db.session.get(User, "tx-f") is not None
