"""The coop directory and join requests (API.md "Coop governance and
discovery"; issue "Coops people can find and join", items 2 and 3)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from webapp.api.validation import encode_cursor
from webapp.extensions import db
from webapp.models import Cooperative, CooperativeMember, CoopJoinRequest, Notification, User
from webapp.services import coops
from webapp.services.errors import DomainError


def _list(client, make_coop, name, *, members=0, hashrate=0.0, country=None, join_mode="invite", listed=True):
    coop, admin, joined = make_coop(name=name, members=members)
    coops.update_discovery(admin, coop_id=coop.id, visibility="listed" if listed else "private",
                           join_mode=join_mode, country_code=country)
    db.session.get(Cooperative, coop.id).total_hashrate = hashrate
    db.session.commit()
    return coop, admin, joined


def test_the_directory_lists_listed_coops_only_with_search_filters_and_sorts(client, make_coop):
    alpha, *_ = _list(client, make_coop, "Alpha Rigs", members=2, hashrate=3e12, country="PT")
    beta, *_ = _list(client, make_coop, "Beta 100% Miners", members=0, hashrate=9e12, country="DE")
    gamma, *_ = _list(client, make_coop, "Gamma Garage", members=5, hashrate=1e12)
    secret, *_ = _list(client, make_coop, "Alpha Secret", hashrate=99e12, listed=False)
    get = lambda **q: client.get("/api/coops/directory", query_string=q)  # noqa: E731
    ids = lambda answer: [c["id"] for c in answer.get_json()["cooperatives"]]  # noqa: E731
    assert ids(get()) == [beta.id, alpha.id, gamma.id]  # by combined hashrate; never the private one
    assert ids(get(sort="members")) == [gamma.id, alpha.id, beta.id]
    assert ids(get(sort="new")) == [gamma.id, beta.id, alpha.id]
    assert ids(get(q="alpha")) == [alpha.id]
    assert ids(get(q="100%")) == [beta.id]  # a literal %, not a wildcard
    assert ids(get(q="%")) == [beta.id]
    assert ids(get(country="PT")) == [alpha.id]
    assert ids(get(min_hashrate=2e12, max_hashrate=5e12)) == [alpha.id]
    entry = get(q="Alpha").get_json()["cooperatives"][0]
    assert entry["member_count"] == 3 and entry["has_room"] is True and entry["country_code"] == "PT"
    assert "invite_code" not in entry and entry["blocks_found"] == 0
    first = get(limit=2).get_json()
    assert [c["id"] for c in first["cooperatives"]] == [beta.id, alpha.id] and first["next_cursor"]
    second = get(limit=2, cursor=first["next_cursor"]).get_json()
    assert [c["id"] for c in second["cooperatives"]] == [gamma.id] and second["next_cursor"] is None
    assert get(cursor=encode_cursor(secret.id)).status_code == 400  # a private coop is no cursor either
    for bad in ({"sort": "best"}, {"country": "XX"}, {"limit": 0}, {"min_hashrate": -1}):
        answer = get(**bad)
        assert answer.status_code == 400, bad
    coops.dissolve(db.session.get(User, db.session.get(Cooperative, gamma.id).admin_user_id), coop_id=gamma.id)
    assert gamma.id not in ids(get())


def test_has_room_filters_out_full_coops(client, make_coop):
    full, *_ = _list(client, make_coop, "Full House", members=19)
    roomy, *_ = _list(client, make_coop, "Roomy", members=1)
    answer = client.get("/api/coops/directory?has_room=true").get_json()["cooperatives"]
    assert [c["id"] for c in answer] == [roomy.id]
    assert full.id in [c["id"] for c in client.get("/api/coops/directory").get_json()["cooperatives"]]


def test_patch_sets_visibility_join_mode_and_country_admin_only(client, make_coop, auth_headers):
    coop, admin, (member,) = make_coop(members=1)
    answer = client.patch(f"/api/coops/{coop.id}", json={"visibility": "listed", "join_mode": "request",
                                                          "country_code": "BR"}, headers=auth_headers(admin))
    assert answer.status_code == 200
    body = answer.get_json()
    assert (body["visibility"], body["join_mode"], body["country_code"]) == ("listed", "request", "BR")
    cleared = client.patch(f"/api/coops/{coop.id}", json={"country_code": None}, headers=auth_headers(admin))
    assert cleared.get_json()["country_code"] is None and cleared.get_json()["visibility"] == "listed"
    assert client.patch(f"/api/coops/{coop.id}", json={"visibility": "public"},
                        headers=auth_headers(admin)).status_code == 400
    assert client.patch(f"/api/coops/{coop.id}", json={"country_code": "ZZ"},
                        headers=auth_headers(admin)).status_code == 400
    assert client.patch(f"/api/coops/{coop.id}", json={"visibility": "private"},
                        headers=auth_headers(member)).status_code == 403


def test_a_join_request_is_approved_and_the_applicant_lands_in_the_coop(client, make_coop, make_user,
                                                                        auth_headers):
    coop, admin, _ = _list(client, make_coop, "Askers Welcome", join_mode="request")
    applicant = make_user()
    asked = client.post(f"/api/coops/{coop.id}/join-requests", json={"message": "Two S9s, always on"},
                        headers=auth_headers(applicant))
    assert asked.status_code == 201
    request_id = asked.get_json()["id"]
    again = client.post(f"/api/coops/{coop.id}/join-requests", json={}, headers=auth_headers(applicant))
    assert again.get_json()["id"] == request_id  # one pending request per coop and miner
    note = db.session.scalar(select(Notification).where(Notification.user_id == admin.user_id,
                                                        Notification.subtype == "coop_join_request"))
    assert note is not None and note.data["request_id"] == request_id
    listed = client.get(f"/api/coops/{coop.id}/join-requests", headers=auth_headers(admin)).get_json()["requests"]
    assert [(r["user_id"], r["message"]) for r in listed] == [(applicant.user_id, "Two S9s, always on")]
    assert client.get(f"/api/coops/{coop.id}/join-requests", headers=auth_headers(applicant)).status_code == 403
    approved = client.post(f"/api/coops/{coop.id}/join-requests/{request_id}/approve", headers=auth_headers(admin))
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert client.get("/api/coops/mine", headers=auth_headers(applicant)).get_json()["cooperative"]["id"] == coop.id
    assert db.session.scalar(select(Notification.subtype).where(
        Notification.user_id == applicant.user_id, Notification.subtype == "coop_join_approved"))
    twice = client.post(f"/api/coops/{coop.id}/join-requests/{request_id}/approve", headers=auth_headers(admin))
    assert twice.status_code == 409


def test_requests_are_refused_where_they_do_not_belong(client, make_coop, make_user, auth_headers):
    invite_only, *_ = _list(client, make_coop, "Invite Only")
    private, *_ = _list(client, make_coop, "Hidden", join_mode="request", listed=False)
    asker = make_user()
    refused = client.post(f"/api/coops/{invite_only.id}/join-requests", json={}, headers=auth_headers(asker))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_accepting_requests"
    hidden = client.post(f"/api/coops/{private.id}/join-requests", json={}, headers=auth_headers(asker))
    assert hidden.status_code == 404
    long = client.post(f"/api/coops/{invite_only.id}/join-requests", json={"message": "x" * 281},
                       headers=auth_headers(asker))
    assert long.status_code == 400


def test_a_declined_request_notifies_the_applicant(client, make_coop, make_user, auth_headers):
    coop, admin, _ = _list(client, make_coop, "Picky", join_mode="request")
    applicant = make_user()
    request_id = client.post(f"/api/coops/{coop.id}/join-requests", json={},
                             headers=auth_headers(applicant)).get_json()["id"]
    declined = client.post(f"/api/coops/{coop.id}/join-requests/{request_id}/decline", headers=auth_headers(admin))
    assert declined.get_json()["status"] == "declined"
    assert db.session.scalar(select(Notification.body).where(
        Notification.user_id == applicant.user_id, Notification.subtype == "coop_join_declined")) == \
        "Your request to join Picky was declined."
    # A new request may follow a decided one.
    assert client.post(f"/api/coops/{coop.id}/join-requests", json={},
                       headers=auth_headers(applicant)).status_code == 201


def test_approval_racing_an_invite_join_for_the_last_seat(app, make_coop, make_user):
    """The coop has 19 members; one approval and one invite join at the same
    moment: exactly one gets the 20th seat, the other a clear 409."""
    coop, admin, _ = make_coop(members=18)
    coops.update_discovery(admin, coop_id=coop.id, visibility="listed", join_mode="request")
    applicant, joiner = make_user(), make_user()
    request_id = coops.request_to_join(applicant, coop_id=coop.id).id
    coop_id, code, admin_id, joiner_id = coop.id, coop.invite_code, admin.user_id, joiner.user_id
    db.session.remove()
    barrier = threading.Barrier(2, timeout=30)

    def run(action) -> str:
        with app.app_context():
            try:
                db.session.rollback()
                barrier.wait()
                action()
                return "ok"
            except DomainError as exc:
                return exc.code
            finally:
                db.session.remove()

    def approve():
        coops.approve_request(db.session.get(User, admin_id), coop_id=coop_id, request_id=request_id)

    def join():
        coops.join(db.session.get(User, joiner_id), invite_code=code)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(run, [approve, join]))
    assert results == ["coop_full", "ok"]
    db.session.expire_all()
    assert db.session.get(Cooperative, coop_id).member_count == 20
    assert db.session.scalar(select(func.count()).select_from(CooperativeMember).where(
        CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == "active")) == 20
    statuses = db.session.scalars(select(CoopJoinRequest.status)).all()
    assert statuses in (["approved"], ["pending"])


def test_ids_beyond_the_columns_are_404_not_database_errors(client, make_coop, make_user, auth_headers):
    """Found by the API fuzz: ids past the 32-bit columns answered 500."""
    coop, admin, _ = make_coop()
    huge = 9223372036854775806
    asked = client.post(f"/api/coops/{huge}/join-requests", json={}, headers=auth_headers(make_user()))
    assert asked.status_code == 404
    for action in ("approve", "decline"):
        answer = client.post(f"/api/coops/{coop.id}/join-requests/{huge}/{action}", headers=auth_headers(admin))
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
