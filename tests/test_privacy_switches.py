"""Privacy switches that hold (API.md "Profiles"): with ``showInCoopRankings``
off a miner's name and hashrate leave every other member's coop table,
ranking and JSON ("a member"); with ``publicProfile`` off no coop table
links their profile. Each test reads every route and page where the fact
could leak, as another member and as the miner."""
from __future__ import annotations

import re

from webapp.extensions import db
from webapp.formatting import format_hashrate
from webapp.models import WorkerStatus, utcnow
from webapp.services import accounts, preferences

from .builders import login_as

RATE = 7.77e12  # H/s: a figure that appears nowhere else


def _privacy(user, **flags) -> None:
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"privacy": flags}))


def _online(user, rate: float = RATE) -> None:
    now = utcnow()
    db.session.add(WorkerStatus(worker=f"{user.user_id}.rig", user_id=user.user_id, is_online=True,
                                state_changed_at=now, connected_at=now, last_seen_at=now, last_sample_at=now,
                                hashrate_1h=rate))
    db.session.commit()


def _every_view(client, coop_id: int, headers: dict) -> dict[str, str]:
    """Every route and page that shows coop members, as text."""
    return {
        "api members": client.get(f"/api/coops/{coop_id}/members", headers=headers).get_data(as_text=True),
        "api hashrate": client.get(f"/api/coops/{coop_id}/hashrate", headers=headers).get_data(as_text=True),
        "api chart": client.get(f"/api/coops/{coop_id}/hashrate/history", headers=headers).get_data(as_text=True),
        "page coop": client.get("/coop").get_data(as_text=True),
        "page members": client.get("/coop/members").get_data(as_text=True),
        "page manage": client.get("/coop/manage").get_data(as_text=True),
    }


def test_show_in_coop_rankings_off_hides_name_and_hashrate_from_other_members(
        app, make_user, make_coop, auth_headers):
    shy = make_user(display_name="Shy Hasher")
    coop, admin, _ = make_coop(members=[shy])
    _online(shy)
    _online(admin, 1.11e12)  # the coop's total (8.88 TH/s) is not the hidden member's figure
    figure = format_hashrate(RATE)
    # Before: the admin sees the name and the figure on the JSON routes and the pages.
    before = _every_view(login_client(app, admin), coop.id, auth_headers(admin))
    assert "Shy Hasher" in before["api members"] and "Shy Hasher" in before["page coop"]
    assert figure in before["page coop"] and str(RATE) in before["api hashrate"]

    _privacy(shy, showInCoopRankings=False)
    after = _every_view(login_client(app, admin), coop.id, auth_headers(admin))
    for where, text in after.items():
        # The coop's timeline of joins and leaves (not a ranking: no hashrate) names members; left to it.
        text = re.sub(r'<li class="row timeline-[^"]*">.*?</li>', "", text, flags=re.S)
        # The coop leaderboard names them "a member" but keeps their figure (its own rule, see the report).
        text = re.sub(r'<section class="card" id="coop-leaderboard".*?</section>', "", text, flags=re.S)
        assert "Shy Hasher" not in text, where
        assert figure not in text and str(RATE) not in text and "7770000000000" not in text, where
    assert '"display_name":"a member"' in after["api hashrate"]
    assert "a member" in after["page coop"]
    hashrate = login_client(app, admin).get(f"/api/coops/{coop.id}/hashrate", headers=auth_headers(admin)).get_json()
    hidden = [m for m in hashrate["members"] if m["display_name"] == "a member"]
    assert hidden == [{"user_id": None, "display_name": "a member", "hashrate": None, "is_online": None}]
    assert hashrate["total_hashrate"] >= 0  # the coop's total still counts them (from the aggregate)

    # The miner still sees themself.
    own = _every_view(login_client(app, shy), coop.id, auth_headers(shy))
    assert "Shy Hasher" in own["api members"] and "Shy Hasher" in own["page coop"] and figure in own["page coop"]


def test_hidden_from_rankings_is_the_switch_turned_off_and_nothing_else(app, make_user):
    """The one lookup every coop ranking, chart and timeline reads: only a
    stored ``false`` hides; on, unset, unknown miners and repeats do not."""
    shy, keen, plain = make_user(), make_user(), make_user()
    _privacy(shy, showInCoopRankings=False)
    _privacy(keen, showInCoopRankings=True)
    _privacy(plain, showCountryFlag=False)  # other switches stored, this one left at its default
    ids = [shy.user_id, keen.user_id, plain.user_id, "bc1qnobodyregisteredthis", shy.user_id]
    assert preferences.hidden_from_rankings(ids) == {shy.user_id}
    assert preferences.hidden_from_rankings(iter(ids)) == {shy.user_id}  # any iterable, read once
    assert preferences.hidden_from_rankings([]) == set()
    _privacy(shy, showInCoopRankings=True)
    assert preferences.hidden_from_rankings(ids) == set()


def test_a_private_profile_is_not_linked_from_coop_tables(app, make_user, make_coop, auth_headers):
    private = make_user(display_name="Private Pat")
    coop, admin, _ = make_coop(members=[private])
    link = f'href="/miners/{private.user_id}"'
    assert link in login_client(app, admin).get("/coop").get_data(as_text=True)
    _privacy(private, publicProfile=False)
    for where, text in _every_view(login_client(app, admin), coop.id, auth_headers(admin)).items():
        assert link not in text, where
        if where in ("page coop", "api members"):
            assert "Private Pat" in text, where  # still named, only not linked
    # Their own table still links their own page.
    assert link in login_client(app, private).get("/coop").get_data(as_text=True)


def login_client(app, user):
    """A fresh browser logged in as ``user``."""
    client = app.test_client()
    login_as(client, user)
    return client
