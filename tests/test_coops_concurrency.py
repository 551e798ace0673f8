"""Coop rules under concurrent requests: each thread has its own app context,
so its own session and database connection (at most ~41 open at once)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Cooperative, CooperativeMember, User
from webapp.services import coops
from webapp.services.errors import DomainError, NotFound

from .builders import wait_for_lock_waiters

pytestmark = pytest.mark.many_connections


def _in_thread(app, user_id: str, action, barrier: threading.Barrier | None = None):
    """Run ``action(user)`` in a fresh app context (own session, own
    connection); returns "ok" or the domain error code."""
    with app.app_context():
        try:
            user = db.session.get(User, user_id)
            db.session.rollback()  # start the action with no open transaction
            if barrier is not None:
                barrier.wait()
            action(user)
            return "ok"
        except DomainError as exc:
            return exc.code
        finally:
            db.session.remove()


def _run_together(app, user_ids: list[str], action_for) -> list[str]:
    barrier = threading.Barrier(len(user_ids), timeout=30)
    with ThreadPoolExecutor(max_workers=len(user_ids)) as pool:
        futures = [pool.submit(_in_thread, app, uid, action_for(i), barrier) for i, uid in enumerate(user_ids)]
        return [f.result(timeout=60) for f in futures]


def _counts(coop_id: int) -> tuple[int, int]:
    """(cooperatives.member_count, active membership rows), read fresh."""
    db.session.expire_all()
    active = db.session.scalar(
        select(func.count()).select_from(CooperativeMember).where(
            CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active"
        )
    )
    return db.session.get(Cooperative, coop_id).member_count, active


def test_forty_concurrent_joins_fill_the_coop_to_exactly_twenty(app, make_user):
    admin = make_user()
    coop = coops.create(admin, name="Crowded")
    code, coop_id = coop.invite_code, coop.id
    joiners = [make_user().user_id for _ in range(40)]
    db.session.remove()

    results = _run_together(app, joiners, lambda i: lambda user: coops.join(user, invite_code=code))

    assert results.count("ok") == 19
    assert results.count("coop_full") == 21
    assert set(results) == {"ok", "coop_full"}
    assert _counts(coop_id) == (20, 20)


def test_one_user_joining_ten_coops_at_once_joins_exactly_one(app, make_user):
    codes, ids = [], []
    for n in range(10):
        coop = coops.create(make_user(), name=f"Coop number {n}")
        codes.append(coop.invite_code)
        ids.append(coop.id)
    user_id = make_user().user_id
    db.session.remove()

    results = _run_together(app, [user_id] * 10, lambda i: lambda user: coops.join(user, invite_code=codes[i]))

    assert results.count("ok") == 1
    assert results.count("already_in_coop") == 9
    memberships = db.session.scalars(
        select(CooperativeMember.cooperative_id).where(
            CooperativeMember.user_id == user_id, CooperativeMember.status == "active"
        )
    ).all()
    assert len(memberships) == 1
    for coop_id in ids:
        expected = 2 if coop_id == memberships[0] else 1
        assert _counts(coop_id) == (expected, expected)


def test_lost_race_on_one_active_coop_per_user_is_409_and_rolls_back(app, make_user):
    """A join that passes the "already in a coop?" read while another
    transaction is inserting that user's membership is stopped by the partial
    unique index and answers already_in_coop; its member_count increment is
    rolled back."""
    first = coops.create(make_user(), name="Wins the race")
    second = coops.create(make_user(), name="Loses the race")
    first_id, second_id, code = first.id, second.id, second.invite_code
    user_id = make_user().user_id
    db.session.remove()

    with db.engine.connect() as other:  # an uncommitted membership of the same user
        other.execute(CooperativeMember.__table__.insert().values(
            cooperative_id=first_id, user_id=user_id, role="member", status="active"))
        other.execute(Cooperative.__table__.update().where(Cooperative.id == first_id)
                      .values(member_count=Cooperative.member_count + 1))
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_in_thread, app, user_id, lambda user: coops.join(user, invite_code=code))
            wait_for_lock_waiters()  # the join's insert waits on the unique index
            other.commit()
            assert pending.result(timeout=30) == "already_in_coop"
    assert _counts(second_id) == (1, 1)
    assert _counts(first_id) == (2, 2)


def test_join_with_old_code_waiting_on_a_regeneration_fails_once_it_commits(app, make_user):
    """The regeneration holds the coop row; a join with the old code found the
    coop before the new code committed and queues behind the lock. When the
    regeneration commits, the join re-checks the code on the new row version
    and answers 404: it never succeeds with the old code."""
    admin = make_user()
    coop = coops.create(admin, name="Rotating code")
    coop_id, old = coop.id, coop.invite_code
    admin_id, joiner_id = admin.user_id, make_user().user_id
    db.session.remove()
    locked, go = threading.Event(), threading.Event()

    def slow_code() -> str:  # runs while the regeneration holds the row lock
        locked.set()
        assert go.wait(timeout=30)
        return "NEWCODE1"

    with ThreadPoolExecutor(max_workers=2) as pool:
        regen = pool.submit(_in_thread, app, admin_id,
                            lambda user: coops.regenerate_code(user, coop_id=coop_id, code_factory=slow_code))
        assert locked.wait(timeout=30)
        joined = pool.submit(_in_thread, app, joiner_id, lambda user: coops.join(user, invite_code=old))
        wait_for_lock_waiters()
        go.set()
        assert regen.result(timeout=30) == "ok"
        assert joined.result(timeout=30) == "not_found"
    assert _counts(coop_id) == (1, 1)
    db.session.expire_all()
    assert db.session.get(Cooperative, coop_id).invite_code == "NEWCODE1"
    joiner = db.session.get(User, joiner_id)
    try:
        coops.join(joiner, invite_code=old)
    except NotFound:
        pass
    else:
        raise AssertionError("the old code still works")
    assert coops.join(joiner, invite_code="newcode1").id == coop_id


def test_joins_racing_a_regeneration_leave_a_consistent_coop(app, make_user):
    """Fifteen joins with the old code and one regeneration released together:
    whatever the interleaving, joins either succeed (committed before the new
    code) or answer 404, and the counts agree."""
    admin = make_user()
    coop = coops.create(admin, name="Busy door")
    coop_id, old = coop.id, coop.invite_code
    users = [admin.user_id] + [make_user().user_id for _ in range(15)]
    db.session.remove()

    def action_for(i):
        if i == 0:
            return lambda user: coops.regenerate_code(user, coop_id=coop_id)
        return lambda user: coops.join(user, invite_code=old)

    results = _run_together(app, users, action_for)
    assert results[0] == "ok"
    assert set(results[1:]) <= {"ok", "not_found"}
    joined = results.count("ok") - 1
    assert _counts(coop_id) == (1 + joined, 1 + joined)
    late = make_user()
    try:
        coops.join(late, invite_code=old)
    except NotFound:
        pass
    else:
        raise AssertionError("the old code still works after the regeneration")


def test_concurrent_leaves_of_admin_and_members_keep_one_admin(app, make_user):
    """Everyone leaves at once: each leave locks the coop row, so admin
    hand-overs and the final dissolution happen in a consistent order."""
    admin = make_user()
    coop = coops.create(admin, name="Exodus")
    coop_id = coop.id
    users = [admin.user_id]
    for _ in range(9):
        user = make_user()
        coops.join(user, invite_code=coop.invite_code)
        users.append(user.user_id)
    db.session.remove()

    results = _run_together(app, users, lambda i: lambda user: coops.leave(user, coop_id=coop_id))

    assert results == ["ok"] * 10
    db.session.expire_all()
    row = db.session.get(Cooperative, coop_id)
    assert (row.status, row.member_count) == ("dissolved", 0)
    assert _counts(coop_id) == (0, 0)
