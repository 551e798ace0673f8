"""The floor: the least a Flask app on gunicorn + gevent must do to answer
the JSON routes that ``benchmarks/api.py`` measures, on the same database.

    gunicorn -c gunicorn.conf.py --chdir benchmarks floor_app:app   # api.py starts it

Same gunicorn settings as the real app (``gunicorn.conf.py``: gevent
workers, ``WEB_CONCURRENCY``), same bearer tokens (signed by
``SECRET_KEY`` with the app's salt, checked by itsdangerous), same JSON
shapes. What it leaves out is what makes it a floor: no ORM, no session
transaction (autocommit, so no BEGIN/ROLLBACK), no pool pre-ping, no
validation models, no rate limiter, no access log, no request id, no
security headers. Each route is one indexed token lookup plus the route's
own query — two round trips to PostgreSQL:

- ``GET /api/notifications/unread-count``: ``SELECT auth_epoch`` by primary
  key, then the COUNT over the partial index ``ix_notifications_unread``;
- ``GET /api/notifications?limit=20``: the token lookup, then the 21 newest
  rows (keyset page) and the unread COUNT in one statement;
- ``GET /api/public/miners/<user_id>`` (no token): the user, their privacy
  settings, their profile fields with each one's visibility (an anonymous
  viewer sees the ``public`` ones) and their leaderboard rank in one statement;
  with a token (a logged-in viewer): the token lookup, then the same
  statement with the viewer's standing (blocked by the miner, friends, a
  pending request between them): 404 when blocked, ``connections`` fields
  for a friend, ``friendship``.

Settings: ``DATABASE_URL`` (``postgresql://``), ``SECRET_KEY``,
``API_TOKEN_TTL`` (seconds, default 30 days).
"""
from __future__ import annotations

import base64
import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from flask import Flask, abort, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

DSN = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
SERIALIZER = URLSafeTimedSerializer(os.environ["SECRET_KEY"], salt="api-token")
TTL = int(os.environ.get("API_TOKEN_TTL") or 30 * 24 * 3600)
POOL_SIZE = 10

app = Flask(__name__)
_pool: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
_opened = 0


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection (at most POOL_SIZE per worker)."""
    global _opened
    try:
        conn = _pool.get_nowait()
    except queue.Empty:
        if _opened < POOL_SIZE:
            _opened += 1
            conn = psycopg.connect(DSN, autocommit=True)
        else:
            conn = _pool.get()
    try:
        yield conn
    finally:
        _pool.put(conn)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def caller(conn: psycopg.Connection) -> str:
    """The user id of a valid bearer token: signature and age, then one
    indexed lookup comparing the revocation epoch. 401 otherwise."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    try:
        payload = SERIALIZER.loads(token, max_age=TTL)
    except BadSignature:
        abort(401)
    row = conn.execute("SELECT auth_epoch FROM users WHERE user_id = %s", (payload["u"],)).fetchone()
    if scheme.lower() != "bearer" or row is None or row[0] != payload["e"]:
        abort(401)
    return payload["u"]


UNREAD = "SELECT count(*) FROM notifications WHERE user_id = %s AND is_read = false"


@app.get("/api/notifications/unread-count")
def unread_count():
    with connection() as conn:
        user_id = caller(conn)
        (count,) = conn.execute(UNREAD, (user_id,)).fetchone()
    return {"count": count}


@app.get("/api/notifications")
def notifications():
    limit = min(max(int(request.args.get("limit", 20)), 1), 100)
    with connection() as conn:
        user_id = caller(conn)
        rows = conn.execute(
            "SELECT id, seq, category, subtype, title, body, link, data, is_read, read_at, created_at, group_key, "
            f"({UNREAD}) FROM notifications WHERE user_id = %s ORDER BY id DESC LIMIT %s",
            (user_id, user_id, limit + 1),
        ).fetchall()
    page = rows[:limit]
    return {
        "notifications": [
            {"id": r[0], "seq": r[1], "category": r[2], "subtype": r[3], "title": r[4], "body": r[5],
             "link": r[6], "data": r[7], "is_read": r[8], "read_at": iso(r[9]), "created_at": iso(r[10]),
             "group_key": r[11]}
            for r in page
        ],
        "next_cursor": base64.urlsafe_b64encode(f"id:{page[-1][0]}".encode()).decode().rstrip("=")
        if len(rows) > limit else None,
        "unread_count": rows[0][12] if rows else 0,
    }


# The rank as profiles.leaderboard_rank computes it: 1 + the miners shown on
# the leaderboard with a strictly higher best difficulty; then the viewer's
# standing (NULL viewer: anonymous).
PROFILE = """
SELECT u.user_id, u.display_name, u.avatar_url, u.created_at, u.country_code,
       coalesce((s.privacy->>'publicProfile')::boolean, true),
       coalesce((s.privacy->>'showCountryFlag')::boolean, true),
       coalesce((s.privacy->>'showOnLeaderboard')::boolean, true),
       1 + (SELECT count(*) FROM users u2 JOIN miner_stats m2 ON m2.user_id = u2.user_id
            LEFT JOIN user_settings s2 ON s2.user_id = u2.user_id
            WHERE m2.best_difficulty > coalesce(m.best_difficulty, 0)
              AND coalesce((s2.privacy->>'showOnLeaderboard')::boolean, true)),
       p.visibility, p.bio, p.pronouns, p.location, p.banner_key,
       EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u.user_id AND b.blocked_id = %(viewer)s),
       EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = %(viewer)s AND f.friend_id = u.user_id),
       (SELECT r.requester_id FROM friend_requests r WHERE r.status = 'pending'
          AND r.user_low = least(u.user_id, %(viewer)s) AND r.user_high = greatest(u.user_id, %(viewer)s) LIMIT 1)
FROM users u LEFT JOIN user_settings s ON s.user_id = u.user_id
LEFT JOIN miner_stats m ON m.user_id = u.user_id
LEFT JOIN user_profiles p ON p.user_id = u.user_id
WHERE u.user_id = %(uid)s
"""
# Each field's level when the miner set none (services/profile_fields.py).
DEFAULT_LEVELS = {"display_name": "public", "avatar": "public", "country_code": "public", "banner": "connections",
                  "bio": "connections", "pronouns": "connections", "location": "connections"}


@app.get("/api/public/miners/<user_id>")
def public_profile(user_id: str):
    with connection() as conn:
        viewer = caller(conn) if "Authorization" in request.headers else None
        row = conn.execute(PROFILE, {"uid": user_id, "viewer": viewer}).fetchone()
    if row is None or not row[5] or (viewer is not None and viewer != user_id and row[14]):
        abort(404)
    levels = {**DEFAULT_LEVELS, **(row[9] or {})}
    relation = "self" if viewer == user_id else "friend" if row[15] else "stranger"

    def shows(field: str) -> bool:
        level = levels[field]
        return relation == "self" or level == "public" or (level == "connections" and relation == "friend")

    body = {"user_id": row[0], "display_name": row[1] if shows("display_name") else row[0][:10],
            "avatar_url": row[2] if shows("avatar") else None, "joined_at": iso(row[3])}
    if shows("banner"):
        body["banner_url"] = f"/media/{row[13]}-1500.webp" if row[13] else None
    if shows("bio"):  # the benchmark's bios are private: no Markdown to render here
        body["bio"] = row[10] or ""
    for index, field in ((11, "pronouns"), (12, "location")):
        if shows(field):
            body[field] = row[index] or ""
    if row[6] and shows("country_code"):
        body["country_code"] = row[4]
    if row[7]:
        body["leaderboard_rank"] = row[8]
    if viewer is not None and viewer != user_id:
        body["friendship"] = ("friends" if row[15] else "none" if row[16] is None
                              else "pending_outgoing" if row[16] == viewer else "pending_incoming")
    return body
