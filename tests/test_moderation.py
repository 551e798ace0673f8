"""Coop moderation (API.md "Coop governance"): roles and transfer, bans,
mutes, slow mode, keyword filters, reports and the audit log, on real
PostgreSQL and Redis."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import (
    Conversation,
    CoopAuditEntry,
    CoopBan,
    Cooperative,
    CooperativeMember,
    Message,
    Notification,
    Report,
    User,
)
from webapp.services import conversations, coop_moderation, coops, messages, moderation, reports
from webapp.services.errors import DomainError, wait_words

from .builders import wait_for_lock_waiters
from .test_coops_concurrency import _in_thread, _run_together


def _api(client, method, path, user, auth_headers, **kw):
    return client.open(path, method=method, headers=auth_headers(user), **kw)


def _actions(coop_id: int) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(CoopAuditEntry.action).where(CoopAuditEntry.cooperative_id == coop_id).order_by(CoopAuditEntry.id)))


def _role(coop_id: int, user_id: str) -> str | None:
    db.session.expire_all()
    return db.session.scalar(select(CooperativeMember.role).where(
        CooperativeMember.cooperative_id == coop_id, CooperativeMember.user_id == user_id,
        CooperativeMember.status == "active"))


# ---- roles and transfer ------------------------------------------------------------------------


def test_admin_assigns_moderators_and_moderators_cannot_touch_admin_or_each_other(
        client, make_user, make_coop, auth_headers):
    coop, admin, (mod1, mod2, member) = make_coop(members=3)
    for mod in (mod1, mod2):
        resp = _api(client, "PATCH", f"/api/coops/{coop.id}/members/{mod.user_id}", admin, auth_headers,
                    json={"role": "moderator"})
        assert resp.status_code == 200 and resp.json == {"user_id": mod.user_id, "role": "moderator"}
    # Only the admin assigns roles; "admin" is not assignable.
    assert _api(client, "PATCH", f"/api/coops/{coop.id}/members/{member.user_id}", mod1, auth_headers,
                json={"role": "moderator"}).json["error"]["code"] == "not_admin"
    assert _api(client, "PATCH", f"/api/coops/{coop.id}/members/{member.user_id}", admin, auth_headers,
                json={"role": "admin"}).status_code == 400
    # A moderator may not remove, mute or ban the admin or another moderator.
    for target in (admin, mod2):
        assert _api(client, "DELETE", f"/api/coops/{coop.id}/members/{target.user_id}", mod1,
                    auth_headers).json["error"]["code"] == "cannot_moderate"
        assert _api(client, "POST", f"/api/coops/{coop.id}/mutes", mod1, auth_headers,
                    json={"user_id": target.user_id, "minutes": 5}).json["error"]["code"] == "cannot_moderate"
        assert _api(client, "POST", f"/api/coops/{coop.id}/bans", mod1, auth_headers,
                    json={"user_id": target.user_id}).json["error"]["code"] == "cannot_moderate"
    # ... but may remove a plain member, and the admin may mute a moderator.
    assert _api(client, "DELETE", f"/api/coops/{coop.id}/members/{member.user_id}", mod1,
                auth_headers).status_code == 200
    assert _api(client, "POST", f"/api/coops/{coop.id}/mutes", admin, auth_headers,
                json={"user_id": mod2.user_id, "minutes": 5}).status_code == 201
    # A plain member moderates nothing.
    outsider_member = make_user()
    coops.join(outsider_member, invite_code=coop.invite_code)
    assert _api(client, "POST", f"/api/coops/{coop.id}/mutes", outsider_member, auth_headers,
                json={"user_id": mod2.user_id, "minutes": 5}).json["error"]["code"] == "not_moderator"
    assert _actions(coop.id) == ["role_changed", "role_changed", "member_removed", "muted"]


def test_transfer_hands_admin_over_and_old_admin_becomes_moderator(client, make_coop, auth_headers):
    coop, admin, (heir, other) = make_coop(members=2)
    resp = _api(client, "POST", f"/api/coops/{coop.id}/transfer", admin, auth_headers,
                json={"user_id": heir.user_id})
    assert resp.status_code == 200 and resp.json["admin_user_id"] == heir.user_id
    assert _role(coop.id, heir.user_id) == "admin" and _role(coop.id, admin.user_id) == "moderator"
    # The old admin no longer can; the heir was told.
    assert _api(client, "POST", f"/api/coops/{coop.id}/transfer", admin, auth_headers,
                json={"user_id": other.user_id}).json["error"]["code"] == "not_admin"
    assert db.session.scalar(select(Notification.subtype).where(Notification.user_id == heir.user_id)
                             .order_by(Notification.id.desc()).limit(1)) == "coop_admin_transferred"
    assert _actions(coop.id) == ["admin_transferred"]


def test_concurrent_transfers_leave_exactly_one_admin(app, make_coop):
    coop, admin, (a, b, c, d) = make_coop(members=4)
    coop_id, heirs, admin_id = coop.id, [a.user_id, b.user_id, c.user_id, d.user_id], admin.user_id
    db.session.remove()

    results = _run_together(app, [admin_id] * 4,
                            lambda i: lambda user: coop_moderation.transfer(user, coop_id=coop_id, user_id=heirs[i]))

    assert sorted(results) == ["not_admin"] * 3 + ["ok"]
    admins = db.session.scalars(select(CooperativeMember.user_id).where(
        CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active",
        CooperativeMember.role == "admin")).all()
    assert len(admins) == 1 and admins[0] in heirs
    assert db.session.get(Cooperative, coop_id, populate_existing=True).admin_user_id == admins[0]


# ---- bans ----------------------------------------------------------------------------------------


def test_ban_removes_the_member_and_the_code_no_longer_lets_them_in(client, make_coop, auth_headers):
    coop, admin, (bad, mod) = make_coop(members=2)
    coop_moderation.set_role(admin, coop_id=coop.id, user_id=mod.user_id, role="moderator")
    resp = _api(client, "POST", f"/api/coops/{coop.id}/bans", mod, auth_headers,
                json={"user_id": bad.user_id, "reason": "spam links"})
    assert resp.status_code == 201 and resp.json["reason"] == "spam links"
    assert _role(coop.id, bad.user_id) is None
    assert db.session.get(Cooperative, coop.id, populate_existing=True).member_count == 2
    assert db.session.scalar(select(Notification.subtype).where(Notification.user_id == bad.user_id)
                             .order_by(Notification.id.desc()).limit(1)) == "coop_removed"

    resp = _api(client, "POST", "/api/coops/join", bad, auth_headers, json={"invite_code": coop.invite_code})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "banned"
    assert _api(client, "POST", f"/api/coops/{coop.id}/bans", admin, auth_headers,
                json={"user_id": bad.user_id}).json["error"]["code"] == "already_banned"
    listed = _api(client, "GET", f"/api/coops/{coop.id}/bans", admin, auth_headers).json["bans"]
    assert [b["user_id"] for b in listed] == [bad.user_id]
    assert _api(client, "GET", f"/api/coops/{coop.id}/bans", bad, auth_headers).status_code == 403

    assert _api(client, "DELETE", f"/api/coops/{coop.id}/bans/{bad.user_id}", mod, auth_headers).status_code == 200
    assert _api(client, "POST", "/api/coops/join", bad, auth_headers,
                json={"invite_code": coop.invite_code}).status_code == 200
    assert _actions(coop.id) == ["role_changed", "banned", "unbanned"]


def test_a_ban_committed_while_a_join_waits_for_the_row_lock_refuses_the_join(app, make_coop, make_user):
    """The join checks for a ban after its UPDATE took the coop's row lock:
    a ban that holds the lock and commits meanwhile is seen (a check before
    the UPDATE would have let the banned user in)."""
    coop, admin, _ = make_coop()
    user = make_user()
    coop_id, code, user_id, admin_id = coop.id, coop.invite_code, user.user_id, admin.user_id
    db.session.remove()

    with app.app_context():  # the ban's transaction, holding the coop row
        coops.lock_active_coop(coop_id)
        db.session.add(CoopBan(cooperative_id=coop_id, user_id=user_id, banned_by=admin_id))
        db.session.flush()
        with ThreadPoolExecutor(1) as pool:
            joined = pool.submit(_in_thread, app, user_id, lambda u: coops.join(u, invite_code=code))
            wait_for_lock_waiters(1)
            db.session.commit()
            assert joined.result(timeout=30) == "banned"
        db.session.remove()
    assert _role(coop_id, user_id) is None
    assert db.session.get(Cooperative, coop_id, populate_existing=True).member_count == 1


def test_concurrent_ban_and_join_never_leave_a_banned_member(app, make_coop, make_user):
    for _ in range(5):
        coop, admin, _ = make_coop()
        user = make_user()
        coop_id, code, uid, aid = coop.id, coop.invite_code, user.user_id, admin.user_id
        db.session.remove()
        barrier = threading.Barrier(2, timeout=30)
        with ThreadPoolExecutor(2) as pool:
            join = pool.submit(_in_thread, app, uid, lambda u, code=code: coops.join(u, invite_code=code), barrier)
            ban = pool.submit(_in_thread, app, aid, lambda a, c=coop_id, t=uid: coop_moderation.ban(
                a, coop_id=c, user_id=t), barrier)
            results = (join.result(timeout=60), ban.result(timeout=60))
        assert results[1] == "ok" and results[0] in ("ok", "banned")
        assert _role(coop_id, uid) is None
        count = db.session.scalar(select(func.count()).select_from(CooperativeMember).where(
            CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active"))
        assert db.session.get(Cooperative, coop_id, populate_existing=True).member_count == count == 1


# ---- mutes ---------------------------------------------------------------------------------------


def test_a_muted_member_is_refused_until_the_mute_runs_out(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        resp = _api(client, "POST", f"/api/coops/{coop.id}/mutes", admin, auth_headers,
                    json={"user_id": member.user_id, "minutes": 30})
        assert resp.status_code == 201 and resp.json["until"] == "2026-11-30T12:30:00Z"
        with pytest.raises(DomainError) as refused:
            moderation.screen_message(coop.id, member.user_id, "hello")
        assert refused.value.status == 403 and refused.value.code == "muted"
        assert refused.value.details == {"until": "2026-11-30T12:30:00Z"}
        assert moderation.muted_until(coop.id, member.user_id) == start + timedelta(minutes=30)
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        assert moderation.screen_message(coop.id, member.user_id, "hello again") == []
        assert moderation.muted_until(coop.id, member.user_id) is None
    assert _api(client, "POST", f"/api/coops/{coop.id}/mutes", admin, auth_headers,
                json={"user_id": member.user_id, "minutes": 10081}).status_code == 400
    assert _api(client, "POST", f"/api/coops/{coop.id}/mutes", admin, auth_headers,
                json={"user_id": member.user_id, "minutes": 0}).status_code == 400


def test_mute_and_unmute_reach_the_members_open_sockets_after_the_commit(app, make_coop, redis):
    """The muted member's sockets hear the coop chat with its muted_until
    (Redis pub/sub on the member's channel, as every socket subscribes)."""
    import json

    from webapp import realtime

    coop, admin, (member,) = make_coop(members=1)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(realtime.user_channel(member.user_id), realtime.fanout_channel())

    def next_event():
        for _ in range(50):
            msg = pubsub.get_message(timeout=0.1)
            if msg is None:
                continue
            data = json.loads(msg["data"])
            if msg["channel"] != realtime.fanout_channel():
                return data
            if member.user_id in data["to"]:  # a fan-out message addressed to the member
                return data["m"]
        raise AssertionError("nothing published")

    row = coop_moderation.mute(admin, coop_id=coop.id, user_id=member.user_id, minutes=5)
    event = next_event()
    assert (event["type"], event["event"]) == ("conversation", "muted")
    assert event["data"]["cooperative_id"] == coop.id
    assert event["data"]["muted_until"] == row.until.isoformat().replace("+00:00", "Z")
    coop_moderation.unmute(admin, coop_id=coop.id, user_id=member.user_id)
    event = next_event()
    assert (event["event"], event["data"]["muted_until"]) == ("unmuted", None)
    pubsub.close()


def test_unmute_ends_the_mute_and_both_are_audited(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    _api(client, "POST", f"/api/coops/{coop.id}/mutes", admin, auth_headers,
         json={"user_id": member.user_id, "minutes": 60})
    listed = _api(client, "GET", f"/api/coops/{coop.id}/mutes", admin, auth_headers).json["mutes"]
    assert [m["user_id"] for m in listed] == [member.user_id]
    assert _api(client, "DELETE", f"/api/coops/{coop.id}/mutes/{member.user_id}", admin,
                auth_headers).json == {"status": "unmuted"}
    assert moderation.screen_message(coop.id, member.user_id, "free") == []
    assert _api(client, "DELETE", f"/api/coops/{coop.id}/mutes/{member.user_id}", admin,
                auth_headers).status_code == 404
    assert _actions(coop.id) == ["muted", "unmuted"]


# ---- slow mode and keyword filters --------------------------------------------------------------


def test_slow_mode_answers_429_with_retry_after_and_exempts_moderators(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    resp = _api(client, "PATCH", f"/api/coops/{coop.id}", admin, auth_headers, json={"slow_mode_seconds": 30})
    assert resp.status_code == 200 and resp.json["slow_mode_seconds"] == 30
    assert _api(client, "PATCH", f"/api/coops/{coop.id}", admin, auth_headers,
                json={"slow_mode_seconds": 3601}).status_code == 400
    assert _api(client, "PATCH", f"/api/coops/{coop.id}", member, auth_headers,
                json={"slow_mode_seconds": 0}).json["error"]["code"] == "not_moderator"

    assert moderation.screen_message(coop.id, member.user_id, "first") == []
    with pytest.raises(DomainError) as slow:
        moderation.screen_message(coop.id, member.user_id, "second")
    assert slow.value.status == 429 and slow.value.code == "slow_mode"
    assert 29 <= int(slow.value.headers["Retry-After"]) <= 30
    # The wait in words, the same as Retry-After: what a refused member reads on the chat page.
    assert slow.value.message == f"Slow mode is on: wait {slow.value.headers['Retry-After']} seconds before your next message."
    for text in ("one", "two", "three"):
        assert moderation.screen_message(coop.id, admin.user_id, text) == []
    # A shorter setting applies at once, not after the old window ran out.
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=5)
    assert moderation.screen_message(coop.id, member.user_id, "third") == []
    with pytest.raises(DomainError) as slow:
        moderation.screen_message(coop.id, member.user_id, "fourth")
    assert int(slow.value.headers["Retry-After"]) <= 5
    assert _actions(coop.id) == ["slow_mode_changed", "slow_mode_changed"]


def test_two_concurrent_posts_under_slow_mode_let_exactly_one_through(app, make_coop):
    coop, admin, members = make_coop(members=1)
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=60)
    coop_id, uid = coop.id, members[0].user_id
    db.session.remove()
    for attempt in range(3):
        app.extensions["redis"].delete(*app.extensions["redis"].keys("*slowmode*") or ["none"])
        results = _run_together(app, [uid] * 8,
                                lambda i: lambda user: moderation.screen_message(coop_id, user.user_id, f"hi {i}"))
        assert sorted(results) == ["ok"] + ["slow_mode"] * 7, attempt


def test_keyword_filters_block_whole_words_any_case_and_flag_files_a_report(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    filters = [{"phrase": "  Free   Bitcoin ", "action": "block"}, {"phrase": "scam", "action": "flag"}]
    resp = _api(client, "PATCH", f"/api/coops/{coop.id}", admin, auth_headers, json={"keyword_filters": filters})
    assert resp.status_code == 200
    assert resp.json["keyword_filters"] == [{"phrase": "Free Bitcoin", "action": "block"},
                                            {"phrase": "scam", "action": "flag"}]
    with pytest.raises(DomainError) as blocked:
        moderation.screen_message(coop.id, member.user_id, "get FREE\nbitcoin now!")
    assert blocked.value.status == 400 and blocked.value.code == "message_blocked"
    assert moderation.screen_message(coop.id, member.user_id, "freebitcoin and scammer are other words") == []
    assert moderation.screen_message(coop.id, member.user_id, "is this a Scam?") == ["scam"]

    moderation.file_flag_report(coop.id, 4242, ["scam"], member.user_id)
    moderation.file_flag_report(coop.id, 4242, ["scam"], member.user_id)  # once per message
    rows = db.session.scalars(select(Report).where(Report.cooperative_id == coop.id)).all()
    assert [(r.target_type, r.target_id, r.reason, r.reporter_user_id) for r in rows] == [
        ("message", "4242", "flagged", None)]
    # Limits: duplicates, empty phrases and unknown actions are 400.
    for bad in ([{"phrase": "x", "action": "block"}, {"phrase": "X", "action": "flag"}],
                [{"phrase": "   ", "action": "block"}], [{"phrase": "x", "action": "delete"}],
                [{"phrase": f"w{i}", "action": "flag"} for i in range(51)]):
        assert _api(client, "PATCH", f"/api/coops/{coop.id}", admin, auth_headers,
                    json={"keyword_filters": bad}).status_code == 400
    assert _actions(coop.id) == ["filters_changed"]


# ---- reports ---------------------------------------------------------------------------------------


def test_report_triage_is_per_coop_and_resolution_tells_the_reporter(client, make_user, make_coop, auth_headers):
    coop, admin, (reporter, troll) = make_coop(members=2)
    other, other_admin, _ = make_coop(name="Other crew")
    platform = make_user(is_admin=True)
    resp = _api(client, "POST", "/api/reports", reporter, auth_headers,
                json={"target_type": "user", "target_id": troll.user_id, "reason": "abuse", "details": "insults"})
    assert resp.status_code == 201 and resp.json["cooperative_id"] == coop.id
    report_id = resp.json["id"]
    assert _api(client, "POST", "/api/reports", reporter, auth_headers,
                json={"target_type": "user", "target_id": troll.user_id,
                      "reason": "spam"}).json["error"]["code"] == "already_reported"
    for missing in (2**31, 10**30, "12x", ""):
        assert _api(client, "POST", "/api/reports", reporter, auth_headers,
                    json={"target_type": "cooperative", "target_id": missing, "reason": "spam"}).status_code == 404
    coop_report = _api(client, "POST", "/api/reports", reporter, auth_headers,
                       json={"target_type": "cooperative", "target_id": other.id, "reason": "other"}).json

    def seen(user):
        return [r["id"] for r in _api(client, "GET", "/api/reports", user, auth_headers).json["reports"]]

    assert seen(admin) == [report_id]
    assert seen(other_admin) == []  # a moderator of another coop sees nothing
    assert seen(reporter) == []
    assert seen(platform) == [coop_report["id"], report_id]
    for outsider in (other_admin, reporter):
        assert _api(client, "POST", f"/api/reports/{report_id}/resolve", outsider, auth_headers,
                    json={"action": "dismiss"}).status_code == 404
    assert _api(client, "POST", f"/api/reports/{coop_report['id']}/resolve", reporter, auth_headers,
                json={"action": "dismiss"}).status_code == 404  # a report no coop triages: platform admins only

    resp = _api(client, "POST", f"/api/reports/{report_id}/resolve", admin, auth_headers,
                json={"action": "mute", "minutes": 15, "note": "cool down"})
    assert resp.status_code == 200 and resp.json["status"] == "resolved" and resp.json["resolution"] == "mute"
    assert moderation.muted_until(coop.id, troll.user_id) is not None
    told = db.session.scalars(select(Notification).where(Notification.user_id == reporter.user_id,
                                                         Notification.subtype == "report_resolved")).all()
    assert len(told) == 1 and "muted" in told[0].body
    assert _api(client, "POST", f"/api/reports/{report_id}/resolve", admin, auth_headers,
                json={"action": "dismiss"}).json["error"]["code"] == "report_resolved"
    assert _actions(coop.id) == ["muted", "report_resolved"]


def test_nobody_judges_a_report_about_themself_and_screens_offer_what_can_be_done(
        client, make_user, make_coop, auth_headers):
    """A report on the coop admin's message: the admin neither sees nor
    resolves it (404); a moderator sees it with no mute or ban (they cannot
    act on the admin: that used to be offered and answered 403); a platform
    admin sees it, with the admin's reach. A report on a moderator: the admin
    may mute or ban, another moderator may not. A platform admin named by a
    report cannot resolve it (403)."""
    coop, admin, (mod, other_mod, member) = make_coop(members=3)
    for m in (mod, other_mod):
        coop_moderation.set_role(admin, coop_id=coop.id, user_id=m.user_id, role="moderator")
    platform = make_user(is_admin=True)
    cid = conversations.coop_conversation_id(coop.id)
    by_admin, _ = messages.post(admin.user_id, cid, "admin speaking")
    by_mod, _ = messages.post(mod.user_id, cid, "moderator speaking")
    on_admin = reports.create(member, target_type="message", target_id=str(by_admin["id"]), reason="abuse")
    on_mod = reports.create(member, target_type="message", target_id=str(by_mod["id"]), reason="abuse")
    on_member = reports.create(mod, target_type="user", target_id=member.user_id, reason="spam")

    def seen(user):
        return [r["id"] for r in _api(client, "GET", "/api/reports", user, auth_headers).json["reports"]]

    assert seen(admin) == [on_member.id, on_mod.id]
    assert seen(mod) == [on_member.id, on_admin.id]  # not the one about themself
    assert seen(other_mod) == [on_member.id, on_mod.id, on_admin.id]
    assert _api(client, "POST", f"/api/reports/{on_admin.id}/resolve", admin, auth_headers,
                json={"action": "dismiss"}).status_code == 404

    def offered(user, report_ids):
        rows = [db.session.get(Report, i) for i in report_ids]
        return reports.outcomes(user, rows, reports.message_bodies(rows))

    assert offered(other_mod, [on_admin.id, on_mod.id, on_member.id]) == {
        on_admin.id: ["dismiss", "delete_message"], on_mod.id: ["dismiss", "delete_message"],
        on_member.id: ["dismiss", "mute", "ban"]}
    assert offered(admin, [on_mod.id]) == {on_mod.id: ["dismiss", "delete_message", "mute", "ban"]}
    assert offered(platform, [on_admin.id, on_mod.id]) == {
        on_admin.id: ["dismiss", "delete_message"], on_mod.id: ["dismiss", "delete_message", "mute", "ban"]}
    messages.delete(mod.user_id, by_mod["id"])
    assert offered(admin, [on_mod.id]) == {on_mod.id: ["dismiss", "mute", "ban"]}  # nothing left to delete

    resp = _api(client, "POST", f"/api/reports/{on_admin.id}/resolve", other_mod, auth_headers,
                json={"action": "mute"})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "cannot_moderate"
    about_platform = reports.create(member, target_type="user", target_id=platform.user_id, reason="other")
    resp = _api(client, "POST", f"/api/reports/{about_platform.id}/resolve", platform, auth_headers,
                json={"action": "dismiss"})
    assert resp.status_code == 403 and resp.json["error"]["message"] == "You cannot resolve a report about yourself."


def test_resolving_with_a_ban_removes_the_member(client, make_coop, auth_headers):
    coop, admin, (reporter, troll) = make_coop(members=2)
    report_id = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="spam").id
    resp = _api(client, "POST", f"/api/reports/{report_id}/resolve", admin, auth_headers, json={"action": "ban"})
    assert resp.status_code == 200
    assert _role(coop.id, troll.user_id) is None and moderation.is_banned(coop.id, troll.user_id)
    assert _actions(coop.id) == ["banned", "report_resolved"]


def _chat(coop_id: int) -> int:
    return db.session.scalar(select(Conversation.id).where(Conversation.cooperative_id == coop_id))


def test_the_chat_posts_through_screen_message(client, make_coop, auth_headers):
    """The messaging core calls screen_message: a muted member's POST is
    403 muted with until, a blocked phrase 400, a flagged one is stored and
    reported with its author."""
    coop, admin, (member,) = make_coop(members=1)
    cid = _chat(coop.id)
    coop_moderation.update_settings(admin, coop_id=coop.id, keyword_filters=[
        {"phrase": "rug pull", "action": "block"}, {"phrase": "scam", "action": "flag"}])
    url = f"/api/conversations/{cid}/messages"
    assert _api(client, "POST", url, member, auth_headers,
                json={"body": "a RUG  pull!"}).json["error"]["code"] == "message_blocked"
    flagged = _api(client, "POST", url, member, auth_headers, json={"body": "scam alert"})
    assert flagged.status_code == 201
    report = db.session.scalar(select(Report).where(Report.target_id == str(flagged.json["id"])))
    assert (report.reason, report.target_user_id, report.cooperative_id) == ("flagged", member.user_id, coop.id)
    coop_moderation.mute(admin, coop_id=coop.id, user_id=member.user_id, minutes=5)
    muted = _api(client, "POST", url, member, auth_headers, json={"body": "hello?"})
    assert muted.status_code == 403 and muted.json["error"]["code"] == "muted"
    # How long is left, in words (no raw timestamp); the end itself in details.until.
    assert muted.json["error"]["message"] == "You are muted in this cooperative's chat for another 5 minutes."
    assert muted.json["error"]["details"]["until"].endswith("Z")
    assert muted.json["error"]["details"]["until"].endswith("Z")


def test_an_edit_is_screened_like_a_post(client, make_coop, auth_headers):
    """PATCH /api/messages/{id} goes through screen_message: a blocked
    phrase is 400 message_blocked and the body stays; a flagged one is
    stored and reported (again after a moderator dismissed the first
    report); a muted author cannot edit; slow mode does not pace edits."""
    coop, admin, (member,) = make_coop(members=1)
    cid = _chat(coop.id)
    coop_moderation.update_settings(admin, coop_id=coop.id, slow_mode_seconds=60, keyword_filters=[
        {"phrase": "rug pull", "action": "block"}, {"phrase": "scam", "action": "flag"},
        {"phrase": "ponzi", "action": "flag"}])
    posted = _api(client, "POST", f"/api/conversations/{cid}/messages", member, auth_headers,
                  json={"body": "gm all"})
    assert posted.status_code == 201
    url = f"/api/messages/{posted.json['id']}"

    blocked = _api(client, "PATCH", url, member, auth_headers, json={"body": "gm, a RUG  pull!"})
    assert blocked.status_code == 400 and blocked.json["error"]["code"] == "message_blocked"
    assert blocked.json["error"]["details"] == {"phrases": ["rug pull"]}
    db.session.expire_all()
    row = db.session.get(Message, posted.json["id"])
    assert (row.body, row.edited_at) == ("gm all", None)

    flagged = _api(client, "PATCH", url, member, auth_headers, json={"body": "gm, scam inbound"})
    assert flagged.status_code == 200 and flagged.json["body"] == "gm, scam inbound"
    report = db.session.scalar(select(Report).where(Report.target_id == str(posted.json["id"])))
    assert (report.reason, report.status, report.target_user_id, report.cooperative_id, report.details) == (
        "flagged", "open", member.user_id, coop.id, "Matched after an edit: scam")

    # Dismissed, then edited again into a flagged phrase: the report is open again.
    reports.resolve(admin, report_id=report.id, action="dismiss")
    again = _api(client, "PATCH", url, member, auth_headers, json={"body": "gm, a ponzi"})
    assert again.status_code == 200
    db.session.expire_all()
    rows = db.session.scalars(select(Report).where(Report.target_id == str(posted.json["id"]))).all()
    assert [(r.id, r.status, r.resolution, r.details) for r in rows] == [
        (report.id, "open", None, "Matched after an edit: ponzi")]

    coop_moderation.mute(admin, coop_id=coop.id, user_id=member.user_id, minutes=5)
    muted = _api(client, "PATCH", url, member, auth_headers, json={"body": "gm again"})
    assert muted.status_code == 403 and muted.json["error"]["code"] == "muted"
    db.session.expire_all()
    assert db.session.get(Message, posted.json["id"]).body == "gm, a ponzi"


def test_delete_message_resolution_and_moderator_deletes_are_audited(client, make_coop, auth_headers):
    coop, admin, (reporter, troll, mod) = make_coop(members=3)
    coop_moderation.set_role(admin, coop_id=coop.id, user_id=mod.user_id, role="moderator")
    cid = _chat(coop.id)
    bad, _ = messages.post(troll.user_id, cid, "buy my coin")
    worse, _ = messages.post(troll.user_id, cid, "buy it now")
    own, _ = messages.post(mod.user_id, cid, "my own words")
    resp = _api(client, "POST", "/api/reports", reporter, auth_headers,
                json={"target_type": "message", "target_id": bad["id"], "reason": "spam"})
    assert resp.status_code == 201
    assert (resp.json["cooperative_id"], resp.json["target_user_id"]) == (coop.id, troll.user_id)
    assert _api(client, "POST", "/api/reports", reporter, auth_headers,
                json={"target_type": "message", "target_id": 999999, "reason": "spam"}).status_code == 404
    resp = _api(client, "POST", f"/api/reports/{resp.json['id']}/resolve", mod, auth_headers,
                json={"action": "delete_message"})
    assert resp.status_code == 200 and resp.json["resolution"] == "delete_message"
    db.session.expire_all()
    assert db.session.get(Message, bad["id"]).deleted_at is not None
    assert db.session.get(Message, bad["id"]).body is None
    # A moderator's delete through the chat is audited; an author's own is not.
    assert _api(client, "DELETE", f"/api/messages/{worse['id']}", mod, auth_headers).status_code == 200
    assert _api(client, "DELETE", f"/api/messages/{own['id']}", mod, auth_headers).status_code == 200
    assert _actions(coop.id) == ["role_changed", "message_deleted", "report_resolved", "message_deleted"]


def test_reports_open_for_24_hours_escalate_to_platform_admins(client, make_user, make_coop, auth_headers):
    coop, admin, (reporter, troll) = make_coop(members=2)
    platform = make_user(is_admin=True)
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        report_id = reports.create(reporter, target_type="user", target_id=troll.user_id, reason="abuse").id
    with time_machine.travel(start + timedelta(hours=23, minutes=59), tick=False):
        assert reports.escalate_overdue() == 0
    with time_machine.travel(start + timedelta(hours=24), tick=False):
        assert reports.escalate_overdue() == 1
        assert reports.escalate_overdue() == 0  # once
    escalated = _api(client, "GET", "/api/reports?escalated=true", platform, auth_headers).json["reports"]
    assert [(r["id"], r["escalated"]) for r in escalated] == [(report_id, True)]
    notes = db.session.scalars(select(Notification.subtype).where(Notification.user_id == platform.user_id)).all()
    assert notes == ["reports_escalated"]


def test_the_escalation_job_is_scheduled():
    from webapp.services.schedule import PERIODIC

    assert "jobs.moderation.escalate_reports" in [p.job for p in PERIODIC]


# ---- audit log --------------------------------------------------------------------------------------


def test_audit_log_pages_newest_first_for_moderators_only(client, make_coop, auth_headers):
    coop, admin, (mod, member) = make_coop(members=2)
    coop_moderation.set_role(admin, coop_id=coop.id, user_id=mod.user_id, role="moderator")
    for minutes in (1, 2, 3):
        coop_moderation.mute(mod, coop_id=coop.id, user_id=member.user_id, minutes=minutes)
    first = _api(client, "GET", f"/api/coops/{coop.id}/audit?limit=3", mod, auth_headers).json
    assert [e["action"] for e in first["entries"]] == ["muted", "muted", "muted"]
    assert [e["data"]["minutes"] for e in first["entries"]] == [3, 2, 1]
    assert first["entries"][0]["actor_display_name"] == mod.display_name
    assert first["entries"][0]["target_user_id"] == member.user_id
    rest = _api(client, "GET", f"/api/coops/{coop.id}/audit?limit=3&cursor={first['next_cursor']}", admin,
                auth_headers).json
    assert [e["action"] for e in rest["entries"]] == ["role_changed"] and rest["next_cursor"] is None
    assert _api(client, "GET", f"/api/coops/{coop.id}/audit", member, auth_headers).status_code == 403
    assert db.session.get(User, member.user_id) is not None


@pytest.mark.parametrize(("seconds", "words"), [
    (0.2, "1 second"), (1, "1 second"), (27, "27 seconds"), (60, "1 minute"), (61, "2 minutes"),
    (299.5, "5 minutes"), (7199, "120 minutes"), (7200, "2 hours"), (86400, "24 hours"), (604800, "7 days"),
])
def test_a_wait_reads_in_its_largest_whole_unit_rounded_up(seconds, words):
    assert wait_words(seconds) == words
