"""Public miner profiles and stats (API.md endpoints 15 and 16, the page
``/miners/<user_id>``), gated by the miner's privacy settings.

* A missing user and a user whose ``publicProfile`` is false raise the same
  ``NotFound()`` (same status, same body): a private profile cannot be told
  apart from a missing one.
* ``country_code`` only when ``showCountryFlag``; ``leaderboard_rank`` only
  when ``showOnLeaderboard``. Absent keys, never null.
* ``leaderboard_rank``: standard competition ranking ("1224") by all-time
  ``best_difficulty`` among registered miners whose ``showOnLeaderboard`` is
  true: 1 + the number of such miners with a strictly higher best. Ties share
  a rank; a miner with no accepted share yet has best 0.
* Stats follow API.md: ``total_shares`` = accepted shares, ``best_difficulty``
  = highest ``sdiff`` of an accepted share, ``hashrate_1h`` (H/s) = sum of the
  latest ``hashrate_1h`` sample of each online worker (connected and sampled
  within ``WORKER_OFFLINE_AFTER``), ``workers_online`` = those workers.
* A stored hashrate or best difficulty outside its physical range
  (``services/bounds.py``; a row from before the bounds, or written by
  hand) reads as 0, so it never reaches a sum, a rank or a JSON answer.
"""
from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Row, String, bindparam, case, exists, func, select, true

from ..extensions import db
from ..formatting import flag_emoji  # noqa: F401 - its old home
from ..models import Block, FriendRequest, Friendship, MinerStats, User, UserProfile, UserSettings, iso, utcnow
from . import (
    accounts,
    bounds,
    hashrate,
    markup,
    media,
    mining,
    preferences,
    profile_cache,
    profile_fields,
    relations,
    transactions,
)
from .errors import NotFound


def _privacy(user_id: str) -> dict[str, bool]:
    row = db.session.get(UserSettings, user_id)
    return preferences.merged_privacy(row.privacy if row else None)


@functools.cache
def _visibility_statement() -> Any:
    """The user's stored privacy and whether they blocked the viewer, one
    row when the user exists (parameters ``uid``, ``viewer``); built once."""
    uid, viewer = bindparam("uid", type_=String), bindparam("viewer", type_=String)
    users, settings, blocks = User.__table__, UserSettings.__table__, Block.__table__
    return (
        select(settings.c.privacy,
               exists().where(blocks.c.blocker_id == users.c.user_id, blocks.c.blocked_id == viewer))
        .select_from(users.outerjoin(settings, settings.c.user_id == users.c.user_id))
        .where(users.c.user_id == uid)
    )


def check_visible(user_id: str, *, viewer_id: str | None = None) -> dict[str, bool]:
    """The user's privacy settings, if ``viewer_id`` may see the profile:
    everyone when it is public, the owner always; never a viewer the user
    blocked. Raises NotFound (identical for missing, private and blocked,
    and for an id that cannot exist: ``accounts.is_user_id`` is checked
    before any query). One statement (``transactions.read``)."""
    rows = transactions.read(_visibility_statement(), {"uid": user_id, "viewer": viewer_id}) \
        if accounts.is_user_id(user_id) else []
    if not rows or (viewer_id is not None and viewer_id != user_id and rows[0][1]):
        raise NotFound()
    privacy = preferences.merged_privacy(rows[0][0])
    if not privacy["publicProfile"] and viewer_id != user_id:
        raise NotFound()
    return privacy


def visible_user(user_id: str, *, viewer_id: str | None = None) -> tuple[User, dict[str, bool]]:
    """The user and their privacy settings, if ``viewer_id`` may see the
    profile (``check_visible``). Raises NotFound as it does."""
    privacy = check_visible(user_id, viewer_id=viewer_id)
    user = db.session.get(User, user_id)
    if user is None:  # deleted in between
        raise NotFound()
    return user, privacy


def _on_leaderboard():
    """SQL: the user's showOnLeaderboard (default true when unset)."""
    return func.coalesce(UserSettings.privacy["showOnLeaderboard"].as_boolean(), true())


def leaderboard_rank(user_id: str) -> int:
    """1 + the number of miners shown on the leaderboard with a strictly
    higher all-time best difficulty (ties share a rank)."""
    best = bounds.usable_sql(MinerStats.best_difficulty, bounds.MAX_DIFFICULTY)  # a bad row ranks as 0
    mine = db.session.scalar(select(best).where(MinerStats.user_id == user_id)) or 0.0
    higher = db.session.scalar(
        select(func.count())
        .select_from(User)
        .join(MinerStats, MinerStats.user_id == User.user_id)
        .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
        .where(best > mine, _on_leaderboard())
    )
    return int(higher or 0) + 1


class ProfileSubject(Protocol):
    """What the serialiser reads of the miner: a ``User`` or a row of the
    profile statement (same attribute names)."""

    user_id: str
    display_name: str
    avatar_url: str | None
    created_at: datetime
    country_code: str | None


def _rank_sql(user_id: Any):
    """SQL for ``leaderboard_rank(user_id)`` as a scalar subquery (Core, on
    aliases so that it can sit in a statement about the user)."""
    users, stats, settings = User.__table__.alias(), MinerStats.__table__.alias(), UserSettings.__table__.alias()
    mine_stats = MinerStats.__table__.alias()
    mine = (select(bounds.usable_sql(mine_stats.c.best_difficulty, bounds.MAX_DIFFICULTY))
            .where(mine_stats.c.user_id == user_id).scalar_subquery())
    best = bounds.usable_sql(stats.c.best_difficulty, bounds.MAX_DIFFICULTY)
    higher = (
        select(func.count())
        .select_from(users.join(stats, stats.c.user_id == users.c.user_id)
                     .outerjoin(settings, settings.c.user_id == users.c.user_id))
        .where(best > func.coalesce(mine, 0.0),
               func.coalesce(settings.c.privacy["showOnLeaderboard"].as_boolean(), true()))
        .scalar_subquery()
    )
    return higher + 1


@functools.cache
def _profile_statement() -> Any:
    """Everything ``profile_dict`` and ``public_profile`` read, for one miner
    (``uid``) as one viewer (``viewer``, NULL for anonymous; ``low`` /
    ``high`` the pair in sorted order), in ONE statement: the user, their
    privacy settings, their profile row, their rank when they show it, and
    the viewer's standing: ``blocked`` (the miner blocked the viewer),
    ``friend`` and ``requester`` (of a pending friend request between the
    two). Built once: building it (aliases and all) costs more than running it."""
    uid, viewer = bindparam("uid", type_=String), bindparam("viewer", type_=String)
    users, settings, profile = User.__table__, UserSettings.__table__, UserProfile.__table__
    blocks, friendships, requests = Block.__table__, Friendship.__table__, FriendRequest.__table__
    shown = func.coalesce(settings.c.privacy["showOnLeaderboard"].as_boolean(), true())
    return (
        select(
            users.c.user_id, users.c.display_name, users.c.avatar_url, users.c.created_at, users.c.country_code,
            settings.c.privacy, case((shown, _rank_sql(uid)), else_=None).label("rank"),
            profile.c.visibility, profile.c.bio, profile.c.pronouns, profile.c.location, profile.c.banner_key,
            exists().where(blocks.c.blocker_id == users.c.user_id, blocks.c.blocked_id == viewer).label("blocked"),
            exists().where(friendships.c.user_id == viewer, friendships.c.friend_id == users.c.user_id)
            .label("friend"),
            select(requests.c.requester_id)
            .where(requests.c.status == "pending", requests.c.user_low == bindparam("low", type_=String),
                   requests.c.user_high == bindparam("high", type_=String))
            .limit(1).scalar_subquery().label("requester"),
        )
        .select_from(users.outerjoin(settings, settings.c.user_id == users.c.user_id)
                     .outerjoin(profile, profile.c.user_id == users.c.user_id))
        .where(users.c.user_id == uid)
    )


def profile_facts(user_id: str, viewer_id: str | None = None) -> Row[Any] | None:
    """The row of ``_profile_statement`` for ``user_id`` seen by
    ``viewer_id`` (None when there is no such user), by ``transactions.read``
    (outside a transaction: no BEGIN/ROLLBACK; inside: sees its writes).
    Columns: ``user_id``, ``display_name``, ``avatar_url``, ``created_at``,
    ``country_code``, ``privacy`` (stored JSON or None), ``rank`` (None when
    hidden from the leaderboard), ``visibility``, ``bio``, ``pronouns``,
    ``location``, ``banner_key`` (None without a profile row), ``blocked``,
    ``friend`` (booleans), ``requester`` (id or None)."""
    pair = sorted((user_id, viewer_id)) if viewer_id is not None and viewer_id != user_id else (None, None)
    rows = transactions.read(_profile_statement(),
                             {"uid": user_id, "viewer": viewer_id, "low": pair[0], "high": pair[1]})
    return rows[0] if rows else None


def _relation(facts: Row[Any] | None, viewer_id: str | None, user_id: str) -> relations.Relation:
    """``relations.relation`` read from the facts row."""
    if viewer_id is None:
        return "stranger"
    if viewer_id == user_id:
        return "self"
    return "friend" if facts is not None and facts.friend else "stranger"


def _friendship(facts: Row[Any] | None, viewer_id: str) -> relations.FriendshipState:
    """``relations.friendship_state`` read from the facts row."""
    if facts is None:
        return "none"
    if facts.friend:
        return "friends"
    if facts.requester is None:
        return "none"
    return "pending_outgoing" if facts.requester == viewer_id else "pending_incoming"


def profile_dict(user: ProfileSubject, privacy: dict[str, bool], viewer_id: str | None = None, *,
                 as_relation: relations.Relation | None = None, facts: Row[Any] | None = None) -> dict[str, Any]:
    """THE profile serialiser (API.md "Profiles"): what ``viewer_id`` may see
    of a user already checked visible. Every door that shows a profile (the
    JSON routes, the pages, socket payloads) calls this one function.

    Always ``user_id``, ``display_name`` (the shortened address when the
    name is hidden), ``avatar_url`` (null when hidden) and ``joined_at``.
    ``banner_url``, ``bio`` with ``bio_html`` (sanitised Markdown),
    ``pronouns``, ``location`` and ``country_code`` (also gated by
    ``showCountryFlag``) only when their level lets the viewer see them:
    ``public`` everyone, ``connections`` friends, ``private`` the owner.
    Absent keys, never null. ``leaderboard_rank`` when ``showOnLeaderboard``;
    ``friendship`` for a logged-in viewer other than the owner.
    ``as_relation`` forces the viewer's standing (the editor's previews of
    what a stranger and a friend see).

    The profile row, the rank and the viewer's standing come from ONE
    statement (``profile_facts``); ``facts`` passes that row when the caller
    already read it (``public_profile``: then nothing more is queried).
    """
    if facts is None:
        facts = profile_facts(user.user_id, viewer_id)
    relation = as_relation or _relation(facts, viewer_id, user.user_id)
    levels = profile_fields.visibility_of(facts)

    def shows(field: str) -> bool:
        return profile_fields.visible(levels[field], relation)

    body: dict[str, Any] = {
        "user_id": user.user_id,
        "display_name": user.display_name if shows("display_name") else accounts.default_display_name(user.user_id),
        "avatar_url": user.avatar_url if shows("avatar") else None,
        "joined_at": iso(user.created_at),
    }
    if shows("banner"):
        body["banner_url"] = media.url("banner", facts.banner_key if facts is not None else None)
    if shows("bio"):
        bio = (facts.bio if facts is not None else None) or ""
        body["bio"] = bio
        body["bio_html"] = markup.render(bio) if bio else ""
    for field in ("pronouns", "location"):
        if shows(field):
            body[field] = (getattr(facts, field) if facts is not None else None) or ""
    if privacy["showCountryFlag"] and shows("country_code"):
        body["country_code"] = user.country_code
    if privacy["showOnLeaderboard"]:
        # The statement ranks when the stored setting shows the rank; apart
        # only if ``privacy`` says otherwise (settings changed and not stored).
        rank = facts.rank if facts is not None else None
        body["leaderboard_rank"] = int(rank) if rank is not None else leaderboard_rank(user.user_id)
    if viewer_id is not None and viewer_id != user.user_id:
        body["friendship"] = _friendship(facts, viewer_id)
    return body


def public_profile(user_id: str, viewer_id: str | None = None) -> dict[str, Any]:
    """Endpoint 15: ``{"user_id", "display_name", "avatar_url", "joined_at"}``
    plus what ``profile_dict`` lets ``viewer_id`` see. Raises NotFound when
    the user is missing, private (to everyone here, the owner included: the
    public door stays shut) or blocked the viewer.

    One statement (``profile_facts``): the user, privacy, profile fields,
    rank and the viewer's friendship and block, serialised by ``profile_dict``.
    Without a viewer, from ``profile_cache`` while nothing it reads has
    changed since (one Redis round trip, no database)."""
    if not accounts.is_user_id(user_id):
        raise NotFound()
    if viewer_id is None:
        cached, generation = profile_cache.CACHE.lookup(user_id, profile_cache.ANONYMOUS)
        if cached is not None:
            return orjson.loads(cached)
        body = _public_profile(user_id, None)
        if generation is not None:
            profile_cache.CACHE.fill(user_id, profile_cache.ANONYMOUS, generation, orjson.dumps(body).decode())
        return body
    return _public_profile(user_id, viewer_id)


def _public_profile(user_id: str, viewer_id: str | None) -> dict[str, Any]:
    facts = profile_facts(user_id, viewer_id)
    if facts is None or (viewer_id is not None and viewer_id != user_id and facts.blocked):
        raise NotFound()
    privacy = preferences.merged_privacy(facts.privacy)
    if not privacy["publicProfile"]:
        raise NotFound()
    return profile_dict(facts, privacy, viewer_id, facts=facts)


def stats_dict(user_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The public stats object (API.md) of any miner id, zeros when unknown."""
    row = db.session.get(MinerStats, user_id)
    rate, online = hashrate.hashrate_by_user([user_id], now)[user_id]
    return {
        "user_id": user_id,
        "total_shares": int(row.total_shares) if row else 0,
        "best_difficulty": bounds.usable(row.best_difficulty, bounds.MAX_DIFFICULTY) if row else 0.0,
        "blocks_found": int(row.blocks_found) if row else 0,
        "hashrate_1h": rate,
        "workers_online": online,
        "last_share_at": iso(row.last_share_at) if row else None,
    }


def public_stats(user_id: str, viewer_id: str | None = None) -> dict[str, Any]:
    """Endpoint 16: ``{"user_id", "total_shares", "best_difficulty",
    "blocks_found", "hashrate_1h", "workers_online", "last_share_at"}``.
    Raises NotFound when the user is missing, private or blocked the viewer."""
    privacy = check_visible(user_id, viewer_id=viewer_id)
    if viewer_id == user_id and not privacy["publicProfile"]:
        raise NotFound()
    return stats_dict(user_id)


def profile_page(user_id: str, *, viewer_id: str | None, rng: hashrate.ChartRange | None = None) -> dict[str, Any]:
    """Everything the profile page shows. The owner sees their own profile
    even when it is private (``is_private`` tells the template to say so);
    anyone else gets NotFound for a private or missing one.

    Returns ``{"user", "profile", "stats", "workers": [{"worker", "name",
    "online", "hashrate_1h", "last_seen_at"}], "personal_bests", "is_owner", "is_private"}``,
    and with ``rng`` the charts of ``hashrate_chart`` and
    ``best_difficulty_chart`` as ``hashrate_chart`` and ``best_chart``
    (the visibility checked once for all of it).
    """
    user, privacy = visible_user(user_id, viewer_id=viewer_id)
    records = mining.alltime_records(user_id)  # one read for the list and the chart
    charts = {} if rng is None else {"hashrate_chart": hashrate.miner_chart(user_id, rng),
                                     "best_chart": _best_difficulty_chart(user_id, rng, records=records)}
    now = utcnow()
    cutoff = hashrate.online_cutoff(now)
    workers = [
        {
            "worker": w.worker,
            "name": mining.worker_label(w.worker),
            "online": bool(w.is_online and w.last_sample_at is not None and w.last_sample_at >= cutoff),
            "hashrate_1h": bounds.usable(w.hashrate_1h, bounds.MAX_HASHRATE),
            "last_seen_at": w.last_seen_at,
            "useragent": w.useragent,
        }
        for w in mining.workers_of(user_id)
    ]
    workers.sort(key=lambda w: (not w["online"], w["name"]))
    return {
        "user": user,
        "profile": profile_dict(user, privacy, viewer_id),
        "stats": stats_dict(user_id, now),
        "workers": workers,
        "personal_bests": mining.recent_personal_bests(user_id, records=records),
        "is_owner": viewer_id == user_id,
        "is_private": not privacy["publicProfile"],
        **charts,
    }


def previews(user: User) -> dict[str, dict[str, Any]]:
    """What a ``stranger`` and a ``friend`` see of ``user``'s profile now
    (``profile_dict``), for the profile editor."""
    privacy, facts = _privacy(user.user_id), profile_facts(user.user_id)
    return {relation: profile_dict(user, privacy, as_relation=relation, facts=facts)
            for relation in ("stranger", "friend")}


def hashrate_chart(user_id: str, rng: hashrate.ChartRange, *, viewer_id: str | None = None,
                   now: datetime | None = None) -> hashrate.Chart:
    """The miner's hashrate chart, total and per worker
    (``hashrate.miner_chart``; ``GET /api/public/miners/{id}/hashrate``).
    Raises NotFound as ``check_visible`` does (private or missing)."""
    check_visible(user_id, viewer_id=viewer_id)
    return hashrate.miner_chart(user_id, rng, now)


def best_difficulty_chart(user_id: str, rng: hashrate.ChartRange, *, viewer_id: str | None = None,
                          now: datetime | None = None) -> hashrate.Chart:
    """The miner's all-time best difficulty over the range, for a log axis
    (``GET /api/public/miners/{id}/best-difficulty``): one point per new
    record (``share_best_diff`` events), the record standing at the start
    of the range first and the current one repeated at ``now``, so a
    stepped line holds each best until it is beaten. Series ``best``;
    empty timestamps when the miner has no record yet. Raises NotFound as
    ``check_visible`` does."""
    check_visible(user_id, viewer_id=viewer_id)
    return _best_difficulty_chart(user_id, rng, now)


def _best_difficulty_chart(user_id: str, rng: hashrate.ChartRange, now: datetime | None = None, *,
                          records: list[mining.queries.Record] | None = None) -> hashrate.Chart:
    now = now or utcnow()
    start = now - rng.span
    history = [(at, best) for at, best in mining.personal_best_history(user_id, records=records)
               if at <= now and bounds.within(best, bounds.MAX_DIFFICULTY) and best > 0]  # a log axis
    before = [best for at, best in history if at < start]
    points = [(start, before[-1])] if before else []
    points += [(at, best) for at, best in history if at >= start]
    if points:
        points.append((now, points[-1][1]))
    return hashrate.Chart(rng, start, now, "", "log", None, [int(at.timestamp()) for at, _ in points],
                          [hashrate.Series("best", "Best difficulty", [best for _, best in points])])
