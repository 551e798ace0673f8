"""Public miner profiles and stats (API.md endpoints 15 and 16), the profile
page and the home page; privacy gates (seed unit tests 20-23, integration 7-8)."""
from __future__ import annotations

import time

import pytest

from webapp.services import accounts, preferences

from .mining_support import drain, sample, share, xadd

PROFILE_KEYS = {"user_id", "display_name", "avatar_url", "joined_at"}
STATS_KEYS = {"user_id", "total_shares", "best_difficulty", "blocks_found", "hashrate_1h", "workers_online",
              "last_share_at"}


def _privacy(user, **flags) -> None:
    accounts.update_settings(user, preferences.SettingsPatch.model_validate({"privacy": flags}))


def _mine(redis, user_id: str, best: float, shares: int = 1) -> None:
    now = time.time()
    for i in range(shares):
        xadd(redis, "share_submitted", share(user_id, "rig", best if i == shares - 1 else 1.0), ts=now - 30 + i)


def test_public_profile_has_the_fields(client, make_user):
    user = make_user(display_name="Alice", country_code="PT")
    body = client.get(f"/api/public/miners/{user.user_id}").get_json()
    assert set(body) == PROFILE_KEYS | {"country_code", "leaderboard_rank"}
    assert body["user_id"] == user.user_id and body["display_name"] == "Alice"
    assert body["country_code"] == "PT" and body["leaderboard_rank"] == 1
    assert body["avatar_url"] is None and body["joined_at"].endswith("Z")


@pytest.mark.parametrize("suffix", ["", "/stats"])
def test_private_profile_answers_the_same_404_as_a_missing_one(client, make_user, auth_headers, suffix):
    user = make_user()
    _privacy(user, publicProfile=False)
    private = client.get(f"/api/public/miners/{user.user_id}{suffix}")
    missing = client.get(f"/api/public/miners/bc1qnosuchminer{suffix}")
    assert private.status_code == missing.status_code == 404
    assert private.get_data() == missing.get_data()
    assert private.get_json() == {"error": {"code": "not_found", "message": "Not found."}}
    assert private.headers["Content-Type"] == missing.headers["Content-Type"]
    # Even the owner's own token sees the public view: private is private.
    assert client.get(f"/api/public/miners/{user.user_id}{suffix}", headers=auth_headers(user)).status_code == 404
    _privacy(user, publicProfile=True)
    assert client.get(f"/api/public/miners/{user.user_id}{suffix}").status_code == 200


def test_hidden_country_and_rank_are_absent_not_null(client, make_user):
    user = make_user(country_code="NL")
    _privacy(user, showCountryFlag=False)
    body = client.get(f"/api/public/miners/{user.user_id}").get_json()
    assert "country_code" not in body and "leaderboard_rank" in body
    _privacy(user, showCountryFlag=True, showOnLeaderboard=False)
    body = client.get(f"/api/public/miners/{user.user_id}").get_json()
    assert body["country_code"] == "NL" and "leaderboard_rank" not in body
    assert set(body) == PROFILE_KEYS | {"country_code"}


def test_leaderboard_rank_orders_by_best_difficulty_among_shown_miners(client, redis, make_user):
    top, second, tied, hidden, idle = (make_user() for _ in range(5))
    _mine(redis, top.user_id, 5e6)
    _mine(redis, second.user_id, 2e6)
    _mine(redis, tied.user_id, 2e6)
    _mine(redis, hidden.user_id, 9e9)  # the best of all, but not on the leaderboard
    _mine(redis, "bc1qunregistered", 8e9)  # pool miners who never registered are not ranked
    drain()
    _privacy(hidden, showOnLeaderboard=False)

    def rank(user):
        return client.get(f"/api/public/miners/{user.user_id}").get_json().get("leaderboard_rank")

    assert (rank(top), rank(second), rank(tied), rank(idle)) == (1, 2, 2, 4)  # ties share a rank
    assert rank(hidden) is None
    _privacy(hidden, showOnLeaderboard=True)
    assert (rank(hidden), rank(top), rank(idle)) == (1, 2, 5)


def test_public_stats_follow_the_api_definitions(client, redis, make_user):
    user = make_user().user_id
    now = time.time()
    xadd(redis, "share_submitted", share(user, "a", 1500.5), ts=now - 50)
    xadd(redis, "share_submitted", share(user, "a", 9e9, accepted=False), ts=now - 40)
    xadd(redis, "share_submitted", share(user, "b", 800.0), ts=now - 30)
    xadd(redis, "hashrate_update", sample(user, "a", 1.2e12), ts=now - 60)
    xadd(redis, "hashrate_update", sample(user, "b", 0.8e12), ts=now - 60)
    xadd(redis, "hashrate_update", sample(user, "old", 5e12), ts=now - 20 * 60)
    xadd(redis, "block_found", {"user": user, "worker": f"{user}.a", "height": 900000})
    drain()
    body = client.get(f"/api/public/miners/{user}/stats").get_json()
    assert set(body) == STATS_KEYS
    assert body["user_id"] == user
    assert (body["total_shares"], body["best_difficulty"], body["blocks_found"]) == (2, 1500.5, 1)
    assert body["hashrate_1h"] == pytest.approx(2.0e12) and body["workers_online"] == 2
    assert body["last_share_at"].endswith("Z")
    fresh = client.get(f"/api/public/miners/{make_user().user_id}/stats").get_json()
    assert fresh["total_shares"] == 0 and fresh["hashrate_1h"] == 0.0 and fresh["last_share_at"] is None


# ---- pages ---------------------------------------------------------------------------


def test_profile_page_shows_name_flag_rank_stats_workers_and_bests(client, redis, make_user):
    user = make_user(display_name="SatoshiHunter", country_code="GB").user_id
    now = time.time()
    xadd(redis, "share_submitted", share(user, "bitaxe-attic-2", 46608917.88671861), ts=now - 100)
    xadd(redis, "share_best_diff", {"user": user, "worker": f"{user}.bitaxe-attic-2", "new_best": 46608917.88671861,
                                    "prev_best": 32400000.0, "timeframe": "alltime"}, ts=now - 100)
    xadd(redis, "hashrate_update", sample(user, "bitaxe-attic-2", 1.16e12), ts=now - 60)
    drain()
    page = client.get(f"/miners/{user}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "SatoshiHunter" in html and "\U0001F1EC\U0001F1E7" in html  # 🇬🇧
    assert 'id="leaderboard-rank">#1<' in html
    assert 'id="stat-best" title="46608917.88671861">46.6M<' in html
    assert 'id="stat-hashrate">1.16 TH/s<' in html
    assert "bitaxe-attic-2" in html and 'class="dot on"' in html
    assert "up from 32.4M" in html
    assert "private" not in html


def test_private_profile_page_is_the_plain_404_except_for_its_owner(client, auth, make_user):
    owner = make_user(display_name="Hidden")
    _privacy(owner, publicProfile=False)
    private = client.get(f"/miners/{owner.user_id}")
    missing = client.get("/miners/bc1qnosuchminer")
    assert private.status_code == missing.status_code == 404
    assert private.get_data() == missing.get_data()
    assert "Hidden" not in private.get_data(as_text=True)

    auth.login(owner.user_id)
    mine = client.get(f"/miners/{owner.user_id}")
    assert mine.status_code == 200
    assert 'id="private-note"' in mine.get_data(as_text=True) and "Hidden" in mine.get_data(as_text=True)
    other = make_user()
    _privacy(other, publicProfile=False)
    assert client.get(f"/miners/{other.user_id}").status_code == 404


def test_home_sends_visitors_to_login_and_miners_to_their_profile(client, auth, make_user):
    anonymous = client.get("/")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].endswith("/login")
    user = make_user()
    auth.login(user.user_id)
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith(f"/miners/{user.user_id}")


def test_number_filters_are_shared_with_every_template(app):
    rendered = app.jinja_env.from_string("{{ 575899027258.6 | hashrate }} {{ 46608917.9 | difficulty }} "
                                         "{{ 'PT' | flag }}").render()
    assert rendered == "576 GH/s 46.6M \U0001F1F5\U0001F1F9"


def test_profile_page_shares_the_json_twins_per_ip_limit_and_answers_a_friendly_429(make_app, make_user):
    user = make_user(display_name="Limited")
    limited = make_app(RATELIMIT_ENABLED=True, PUBLIC_RATE_LIMIT="3 per minute")
    client = limited.test_client()
    assert client.get(f"/api/public/miners/{user.user_id}").status_code == 200
    assert client.get(f"/miners/{user.user_id}").status_code == 200
    assert client.get(f"/api/public/miners/{user.user_id}/stats").status_code == 200
    page = client.get(f"/miners/{user.user_id}")
    make_app()  # the limiter is one object: switch it back off for the other tests
    assert page.status_code == 429 and int(page.headers["Retry-After"]) > 0
    html = page.get_data(as_text=True)
    assert "Slow down a little" in html and "Too many profile views" in html and "Try again in" in html
    assert page.mimetype == "text/html"
    other = limited.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"  # per client IP: another address is not limited
    assert other.get(f"/miners/{user.user_id}").status_code == 200
