"""A coop's timeline (issue "Coops people can find and join", item 5):
joins, leaves, removals, role changes, invites, members' personal bests and
blocks, newest first, keyset pages, hidden members named "a member"."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from webapp.extensions import db
from webapp.services import accounts, activity, coop_moderation, coops, preferences


def _at(minutes):
    return datetime(2026, 11, 30, 12, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def test_the_timeline_tells_what_happened_newest_first_in_pages(client, make_user, auth_headers):
    with time_machine.travel(_at(0), tick=False):
        admin = make_user(display_name="Ada")
        coop = coops.create(admin, name="Timeline Coop")
    with time_machine.travel(_at(1), tick=False):
        bob = make_user(display_name="Bob")
        coops.join(bob, invite_code=coop.invite_code)
    with time_machine.travel(_at(2), tick=False):
        cy = make_user(display_name="Cy")
        coops.join(cy, invite_code=coop.invite_code)
    with time_machine.travel(_at(3), tick=False):
        coop_moderation.set_role(admin, coop_id=coop.id, user_id=bob.user_id, role="moderator")
    with time_machine.travel(_at(4), tick=False):
        coops.create_invite(admin, coop_id=coop.id, max_uses=5)
    with time_machine.travel(_at(5), tick=False):
        row = activity.record_activity(bob.user_id, "share_submitted", "New personal best",
                                       data={"personal_best": True, "difficulty": 5.5e9})
        db.session.commit()
        assert row.created_at == _at(5)
    with time_machine.travel(_at(6), tick=False):
        coops.leave(cy, coop_id=coop.id)
    with time_machine.travel(_at(7), tick=False):
        body = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(admin)).get_json()
    assert [(e["kind"], e["text"]) for e in body["entries"]] == [
        ("left", "Cy left"),
        ("personal_best", "Bob set a personal best: 5.5G"),
        ("invite_created", "Ada made an invite (5 uses)"),
        ("role_changed", "Ada made Bob a moderator"),
        ("joined", "Cy joined"),
        ("joined", "Bob joined"),
        ("joined", "Ada founded the cooperative"),
    ]
    assert body["next_cursor"] is None and body["entries"][0]["at"] == "2026-11-30T12:06:00Z"
    first = client.get(f"/api/coops/{coop.id}/timeline?limit=3", headers=auth_headers(bob)).get_json()
    second = client.get(f"/api/coops/{coop.id}/timeline?limit=3&cursor={first['next_cursor']}",
                        headers=auth_headers(bob)).get_json()
    third = client.get(f"/api/coops/{coop.id}/timeline?limit=3&cursor={second['next_cursor']}",
                       headers=auth_headers(bob)).get_json()
    assert [e["text"] for e in first["entries"] + second["entries"] + third["entries"]] == \
        [e["text"] for e in body["entries"]]
    assert third["next_cursor"] is None
    assert client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(cy)).status_code == 403
    assert client.get(f"/api/coops/{coop.id}/timeline?cursor=zzz", headers=auth_headers(bob)).status_code == 400


def test_a_member_hidden_from_rankings_is_a_member_in_the_timeline(client, make_coop, auth_headers):
    coop, admin, (shy,) = make_coop(members=1)
    accounts.update_settings(shy, preferences.SettingsPatch.model_validate(
        {"privacy": {"showInCoopRankings": False}}))
    activity.record_activity(shy.user_id, "block_found", "You found block 900,001!", data={"height": 900001})
    db.session.commit()
    entries = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(admin)).get_json()["entries"]
    assert entries[0] == {"at": entries[0]["at"], "kind": "block_found", "user_id": None,
                          "text": "A member found block 900,001!"}
    page = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(admin))
    assert shy.display_name not in page.get_data(as_text=True).split("joined")[0]


def test_a_hidden_member_joins_as_a_member(client, make_coop, make_user, auth_headers):
    coop, admin, _ = make_coop()
    shy = make_user(display_name="Shy Sam")
    accounts.update_settings(shy, preferences.SettingsPatch.model_validate(
        {"privacy": {"showInCoopRankings": False}}))
    coops.join(shy, invite_code=coop.invite_code)
    seen_by_admin = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(admin)).get_json()
    assert seen_by_admin["entries"][0]["text"] == "A member joined"
    assert "Shy Sam" not in str(seen_by_admin)
    seen_by_sam = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(shy)).get_json()
    assert seen_by_sam["entries"][0]["text"] == "Shy Sam joined"


def test_a_name_in_lower_case_stays_as_written(client, make_coop, make_user, auth_headers):
    coop, admin, _ = make_coop()
    plain = make_user(display_name="bc1qlower…9xyz")
    coops.join(plain, invite_code=coop.invite_code)
    body = client.get(f"/api/coops/{coop.id}/timeline", headers=auth_headers(admin)).get_json()
    assert body["entries"][0]["text"] == "bc1qlower…9xyz joined"
