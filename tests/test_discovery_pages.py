"""Pages of discovery: the coop directory and asking to join, join requests
on the manage screen, the public leaderboard, the coop's leaderboard card
and the onboarding card on a new miner's home."""
from __future__ import annotations

from sqlalchemy import select

from webapp.extensions import db
from webapp.models import CoopJoinRequest, MinerStats, WorkerStatus
from webapp.services import coops

from .builders import login_as as builder_login


def test_the_directory_page_lists_and_filters_listed_coops(client, make_coop):
    listed, admin, _ = make_coop(name="Lisbon Lightning")
    coops.update_discovery(admin, coop_id=listed.id, visibility="listed", join_mode="request", country_code="PT")
    make_coop(name="Hidden Garage")
    page = client.get("/coops").get_data(as_text=True)
    assert "Lisbon Lightning" in page and "Hidden Garage" not in page
    assert "Log in to ask to join" in page
    fragment = client.get("/coops?q=nothing-like-it", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.startswith('<section id="directory-list"') and 'id="directory-empty"' in fragment
    assert "No listed cooperative matches; try fewer filters." in fragment
    assert client.get("/coops?country=XX").status_code == 400


def test_an_empty_directory_says_none_is_listed_not_that_nothing_matched(client, make_coop):
    make_coop(name="Hidden Garage")
    page = client.get("/coops").get_data(as_text=True)
    assert "No cooperative is listed in the directory yet" in page and "matches" not in page


def test_asking_to_join_from_the_directory_and_approving_on_the_manage_screen(app, client, make_coop, make_user,
                                                                              login_as):
    coop, admin, _ = make_coop(name="Askers")
    coops.update_discovery(admin, coop_id=coop.id, visibility="listed", join_mode="request")
    applicant = make_user(display_name="Newcomer Nia")
    headers = login_as(applicant, csrf_from="/coops")
    sent = client.post(f"/coops/{coop.id}/request", data={"message": "One Bitaxe"}, headers=headers)
    assert sent.status_code == 200 and "Request sent" in sent.get_data(as_text=True)
    assert "Request sent" in client.get("/coops").get_data(as_text=True)
    request_id = db.session.scalar(select(CoopJoinRequest.id))
    admin_client = app.test_client()
    admin_headers = builder_login(admin_client, admin, csrf_from="/coop/manage")
    manage = admin_client.get("/coop/manage").get_data(as_text=True)
    assert f'id="join-request-{request_id}"' in manage and "Newcomer Nia" in manage and "One Bitaxe" in manage
    assert 'id="coop-discovery"' in manage
    approved = admin_client.post(f"/coop/{coop.id}/join-requests/{request_id}/approve", headers=admin_headers)
    assert approved.status_code == 200 and "Newcomer Nia joined." in approved.get_data(as_text=True)
    assert coops.get_mine(applicant).id == coop.id


def test_the_manage_screen_lists_the_coop(client, make_coop, login_as):
    coop, admin, _ = make_coop()
    headers = login_as(admin, csrf_from="/coop/manage")
    saved = client.post(f"/coop/{coop.id}/discovery", data={"visibility": "listed", "join_mode": "request",
                                                            "country_code": "de"}, headers=headers)
    assert saved.status_code == 200 and "Saved." in saved.get_data(as_text=True)
    db.session.expire_all()
    fresh = coops.get_mine(admin)
    assert (fresh.visibility, fresh.join_mode, fresh.country_code) == ("listed", "request", "DE")


def test_the_leaderboard_page_shows_the_viewers_rank(client, make_user, login_as):
    first, me = make_user(display_name="Top Miner"), make_user()
    db.session.add_all([MinerStats(user_id=first.user_id, best_difficulty=9e9),
                        MinerStats(user_id=me.user_id, best_difficulty=1e9)])
    db.session.commit()
    anonymous = client.get("/leaderboard").get_data(as_text=True)
    assert "Top Miner" in anonymous and 'id="my-rank"' not in anonymous
    login_as(me)
    page = client.get("/leaderboard").get_data(as_text=True)
    assert "Rank #2</strong> of 2" in page


def test_the_dashboard_has_the_coop_leaderboard_with_a_metric_switch(client, make_coop, login_as):
    coop, admin, _ = make_coop()
    login_as(admin)
    page = client.get("/coop").get_data(as_text=True)
    assert 'id="coop-leaderboard"' in page and "(you)" in page
    card = client.get("/coop/leaderboard?metric=best_difficulty", headers={"HX-Request": "true"})
    # The swapped card's current tab takes the focus (htmx focuses [autofocus]), not <body>.
    assert card.status_code == 200 and 'aria-current="true" autofocus>Best difficulty' in card.get_data(as_text=True)
    assert client.get("/coop/leaderboard?metric=luck", headers={"HX-Request": "true"}).status_code == 400


def test_a_leaderboard_tab_opened_as_a_page_is_the_dashboard_on_that_tab(client, make_coop, login_as):
    coop, admin, _ = make_coop()
    login_as(admin)
    page = client.get("/coop").get_data(as_text=True)
    # Each tab's link leads to a whole page (a new tab, a bookmark), not to the bare card.
    assert 'href="/coop?metric=shares_24h#coop-leaderboard"' in page
    opened = client.get("/coop/leaderboard?metric=best_difficulty")
    assert opened.status_code == 302
    assert opened.headers["Location"] == "/coop?metric=best_difficulty#coop-leaderboard"
    tab = client.get("/coop?metric=best_difficulty").get_data(as_text=True)
    assert "<html" in tab and 'aria-current="true">Best difficulty' in tab  # no autofocus on a page load
    assert 'aria-current="true">Hashrate' in client.get("/coop?metric=luck").get_data(as_text=True)


def test_a_new_miner_sees_how_to_connect_and_a_checklist_that_ticks(app, client, make_user, make_coop, login_as):
    user = make_user(display_name=None)
    login_as(user)
    home = client.get(f"/miners/{user.user_id}").get_data(as_text=True)
    assert 'id="onboarding"' in home and app.config["POOL_STRATUM_URL"] in home
    assert f"{user.user_id}.bitaxe-1" in home
    assert 'id="onboarding-connect_worker" class="todo"' in home and 'id="onboarding-coop" class="todo"' in home
    db.session.add(WorkerStatus(user_id=user.user_id, worker=f"{user.user_id}.bitaxe-1", is_online=True))
    db.session.commit()
    make_coop(members=[user])
    home = client.get(f"/miners/{user.user_id}").get_data(as_text=True)
    assert 'id="onboarding-connect_worker" class="done"' in home and 'id="onboarding-coop" class="done"' in home
    assert 'id="onboarding-display_name" class="todo"' in home
    # Someone else's profile never shows the card.
    other = make_user()
    assert 'id="onboarding"' not in client.get(f"/miners/{other.user_id}").get_data(as_text=True)
