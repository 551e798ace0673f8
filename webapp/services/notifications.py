"""The one notification dispatcher, and the reads and changes of a user's
notifications (API.md endpoints 10–13, ``DELETE /api/notifications/{id}``).

``notify`` validates, applies the user's preferences (a disabled category or
frontend subtype toggle stores nothing: no row, no push, no mail), stores the
row (plus its e-mail and push deliveries: ``pending``, or a mail ``held``
by quiet hours or a digest), and once the transaction commits publishes it
to Redis for the sockets and enqueues the e-mail and push jobs. It counts
nothing: the hourly cap is applied by those jobs when they claim a delivery
(``services/hourly_cap.py``). Callable from any process: web, RQ worker,
ingest.

Order: every row gets ``seq``, the user's next number in **commit order**,
at the outermost commit of its transaction (services/sequences.py; the
counter is ``notification_sequences``). Socket catch-up and live delivery
follow ``seq``, never ``id`` (ids are taken at insert, and transactions
commit in another order). A ``since`` id is mapped to a seq cursor by
``cursor_after_id``.

The push and the e-mail job are tied to the commit with
``transactions.before_commit``/``after_commit``: the row is serialised at
the outermost commit (its seq just assigned), so the after-commit callback
only talks to Redis. The e-mail job runs in its own app context and DB
session, so it also works when the embedded default executes it inline
inside that callback.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from flask import current_app
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    bindparam,
    delete,
    false,
    func,
    inspect,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm.exc import StaleDataError

from .. import realtime
from ..extensions import db, execute_dml, get_redis
from ..models import (
    NOTIFICATION_CATEGORIES,
    Notification,
    NotificationDelivery,
    NotificationSequence,
    PushSubscription,
    User,
    UserSettings,
    iso,
    utcnow,
)
from ..vocabulary import DeliveryChannel, DeliveryStatus
from . import (
    catalogue,
    email,
    inputs,
    jobqueue,
    notification_cache,
    pacing,
    preferences,
    sequences,
    transactions,
    webpush,
)
from .errors import NotFound, ValidationError
from .fields import check_data, check_link, check_text

MAX_TITLE = 200
MAX_SUBTYPE = 64
MAX_BODY = 2000
MAX_ID = 2**63 - 1  # BIGINT; larger path ids are simply not found
# A user's notification numbers (services/sequences.py); the first
# notification of a user creates the counter row.
NOTIFICATION_SEQ = sequences.Counter(NotificationSequence.user_id, NotificationSequence.last_seq,
                                     create_missing=True)
sequences.sequenced(Notification, counter=NOTIFICATION_SEQ, key="user_id", seq="seq")


@dataclass
class _Pending:
    """A stored notification waiting for its transaction to commit."""

    user_id: str
    row: Notification
    payload: dict[str, Any]  # Notification.to_dict(); "seq" filled in just before the commit
    wants_email: bool  # a mail to send now (held mail waits for its summary)
    wants_push: bool = False


def validate_fields(category: str, subtype: str, title: str, body: str, link: str | None, data: Any) -> None:
    """Check a notification's fields. Raises ValidationError (400).

    ``link`` is a site path (``/coops/3``) or an http(s) URL: anything else
    (``javascript:``) would become a script in every page that shows it.
    """
    if category not in NOTIFICATION_CATEGORIES:
        raise ValidationError(f"Unknown notification category {category!r}.")
    if not isinstance(subtype, str) or not 1 <= len(subtype) <= MAX_SUBTYPE:
        raise ValidationError(f"subtype must be 1 to {MAX_SUBTYPE} characters.")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise ValidationError(f"title must be 1 to {MAX_TITLE} characters.")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise ValidationError(f"body must be at most {MAX_BODY} characters.")
    check_text("subtype", subtype)
    check_text("title", title)
    check_text("body", body, inputs.MULTILINE)
    check_link(link)
    check_data(data)


user_preferences = preferences.user_notifications  # the name callers have used

MAX_GROUP_KEY = 200


def group_key_for(user_id: str, subtype: str, data: dict[str, Any] | None) -> str:
    """``<subtype>:<subject>``: what the row is about, so "7 miners joined
    Satoshi's Hunters" is one group. The subject is the cooperative for coop
    kinds (``data.cooperative_id``), the broadcast for a broadcast, else the
    recipient (``personal_best:<user>``, ``worker_offline:<user>``)."""
    data = data if isinstance(data, dict) else {}
    subject: Any = user_id
    for key in ("cooperative_id", "broadcast_id"):
        if isinstance(data.get(key), (int, str)) and not isinstance(data.get(key), bool):
            subject = data[key]
            break
    return f"{subtype}:{subject}"[:MAX_GROUP_KEY]


def notify(
    user_id: str,
    category: str,
    subtype: str,
    title: str,
    body: str = "",
    link: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    commit: bool = True,
) -> Notification | None:
    """Store a notification for ``user_id`` unless their preferences say no.

    Returns the row, or None when the category or the subtype's frontend
    toggle is off, or the user does not exist. With ``commit=False`` the
    caller's transaction commits it (ingest does, to keep events and
    notifications atomic); the live push and the e-mail job run only after
    the outermost commit, and never for a rolled-back savepoint or
    transaction. The row's ``seq`` is given at that commit too (None until
    then). Raises ValidationError for bad fields.
    """
    body = body or ""
    validate_fields(category, subtype, title, body, link, data)
    if commit and transactions.idle():
        with transactions.autocommit() as connection:
            stored = _store_alone(connection, user_id, category, subtype, title, body, link, data)
        if stored is not None:
            # A text statement: no ORM event forgets the cached count, the push does.
            dispatch_committed([stored], forget_cached=True)  # the connection is back in the pool by now
        return stored.row if stored is not None else None
    found = _recipient(db.session.execute, user_id, category, subtype)
    if found is None:
        return None
    floor, channels = found
    row = Notification(
        user_id=user_id, category=category, subtype=subtype, title=title, body=body, link=link, data=data,
        seq_floor=floor, group_key=group_key_for(user_id, subtype, data),
    )
    db.session.add(row)
    db.session.flush()  # the id, for the delivery row and the payload; seq comes at commit
    if channels.email_status:
        db.session.add(NotificationDelivery(notification_id=row.id, channel=DeliveryChannel.EMAIL,
                                            status=channels.email_status, last_error=channels.email_error))
    if channels.push:
        db.session.add(NotificationDelivery(notification_id=row.id, channel=DeliveryChannel.PUSH,
                                            status=DeliveryStatus.PENDING))
    _on_commit(row, channels.email_job, channels.push)
    if commit:
        db.session.commit()
    return row


def _store_alone(connection: Connection, user_id: str, category: str, subtype: str, title: str, body: str,
                 link: str | None, data: dict[str, Any] | None) -> _Pending | None:
    """``notify`` when it is the whole transaction (``commit=True``, nothing
    begun, PostgreSQL): two statements in autocommit on ``connection``
    instead of six round trips and an ORM flush (docs/PERFORMANCE.md). The
    second advances the user's counter, inserts the row with its seq and
    its delivery rows, all in one statement: the counter row stays locked
    until that statement commits, so seq order is still commit order
    (services/sequences.py). Returns what ``dispatch_committed`` sends
    (its ``row`` a transient ``Notification``, not in the session), or None
    as ``notify`` does."""
    found = _recipient(connection.execute, user_id, category, subtype)
    if found is None:
        return None
    floor, channels = found
    now = utcnow()
    values = {"user_id": user_id, "category": category, "subtype": subtype, "title": title, "body": body,
              "link": link, "data": data, "created_at": now, "seq_floor": floor,
              "group_key": group_key_for(user_id, subtype, data)}
    stored = connection.execute(_store_alone_statement(), {
        **values, "email": channels.email_status is not None, "email_status": channels.email_status,
        "email_error": channels.email_error, "push": channels.push}).one()
    row = Notification(id=stored.id, seq=stored.seq, is_read=False, read_at=None, **values)
    return _Pending(user_id, row, row.to_dict(), channels.email_job, channels.push)


@functools.cache
def _store_alone_statement() -> Any:
    """The counter, the row and its deliveries in one PostgreSQL statement
    (data-modifying CTEs all run, read or not), built once."""
    return text("""
        WITH bump AS (
            INSERT INTO notification_sequences (user_id, last_seq) VALUES (:user_id, 1)
            ON CONFLICT (user_id) DO UPDATE SET last_seq = notification_sequences.last_seq + 1
            RETURNING last_seq
        ), stored AS (
            INSERT INTO notifications (user_id, category, subtype, title, body, link, data, is_read,
                                       created_at, seq, seq_floor, group_key)
            SELECT :user_id, :category, :subtype, :title, :body, :link, :data, false,
                   :created_at, bump.last_seq, :seq_floor, :group_key
            FROM bump
            RETURNING id, seq
        ), deliveries AS (
            INSERT INTO notification_deliveries (notification_id, channel, status, attempts, last_error,
                                                 created_at, updated_at)
            SELECT stored.id, wanted.channel, wanted.status, 0, wanted.last_error, :created_at, :created_at
            FROM stored, (VALUES ('email', CAST(:email_status AS varchar), CAST(:email_error AS text),
                                  CAST(:email AS boolean)),
                                 ('push', 'pending', NULL, CAST(:push AS boolean)))
                         AS wanted(channel, status, last_error, wanted)
            WHERE wanted.wanted
        )
        SELECT id, seq FROM stored
    """).bindparams(bindparam("data", type_=Notification.__table__.c.data.type),
                    bindparam("created_at", type_=Notification.__table__.c.created_at.type))


def _recipient(execute: Callable[..., Any], user_id: str, category: str, subtype: str) -> tuple[int, _Channels] | None:
    """``(seq_floor, channels)`` of a notification for ``user_id``, or None
    when the user does not exist or their preferences turn it off. One round
    trip (``execute``: the session's or a connection's) for the address, the
    preferences and the user's last committed seq (the hot path of ingest).
    That seq is read before the row takes its id: the row's ``seq_floor``."""
    found = execute(_recipient_statement(), {"user_id": user_id}).first()
    if found is None:
        return None
    address, stored_prefs, floor, subscribed = found
    prefs = preferences.merged_notifications(stored_prefs)
    if not preferences.allows_in_app(prefs, category, subtype):
        return None
    return floor or 0, _outside_channels(category, prefs, bool(address), bool(subscribed))


@functools.cache
def _recipient_statement():
    """The address, stored preferences, last seq and "has a push
    subscription" of ``:user_id``, built once (building it cost as much as
    running it)."""
    has_push = select(PushSubscription.id).where(PushSubscription.user_id == User.user_id).exists()
    return (select(User.email, UserSettings.notifications, NotificationSequence.last_seq, has_push)
            .outerjoin(UserSettings, UserSettings.user_id == User.user_id)
            .outerjoin(NotificationSequence, NotificationSequence.user_id == User.user_id)
            .where(User.user_id == bindparam("user_id")))


def notify_known_user(user_id: str, category: str, subtype: str, title: str, body: str = "",
                      link: str | None = None, data: dict[str, Any] | None = None, *,
                      commit: bool = True) -> Notification | None:
    """``notify`` for outside senders (internal API, CLI): an unknown user is
    NotFound (404) rather than a silent None; None still means the user's
    preferences suppressed it. ``commit=False`` as for ``notify``."""
    row = notify(user_id, category, subtype, title, body, link, data, commit=commit)
    # Asked only for a None: a stored row proves the user exists.
    if row is None and db.session.get(User, user_id) is None:
        raise NotFound("No user with that user_id.")
    return row


def notify_kind(user_id: str, subtype: str, *, link: str | None = None, data: dict[str, Any] | None = None,
                commit: bool = True, **values: Any) -> Notification | None:
    """``notify`` with a kind of the catalogue (``services/catalogue.py``):
    its category, and its title and body templates filled with ``values``.
    Raises KeyError for an unknown subtype or a missing value."""
    kind = catalogue.KIND[subtype]
    title, body = kind.render(**values)
    return notify(user_id, kind.category, kind.subtype, title, body, link, data, commit=commit)


@dataclass(frozen=True)
class _Channels:
    """What a new notification gets beyond the app: ``email_status``
    (``pending``, ``held`` for a summary, or None for no mail row) with its
    ``email_error`` note, whether the e-mail job is enqueued now
    (``email_job``), and whether a push delivery row and job are added."""

    email_status: str | None
    email_error: str | None
    email_job: bool
    push: bool


def _outside_channels(category: str, prefs: dict, has_address: bool, subscribed: bool) -> _Channels:
    """The e-mail and push deliveries the user's settings and ``pacing``
    allow, from the preferences already read (no statement). E-mail is
    ``pending`` (its job sends it after the commit) or ``held`` for a summary
    (quiet hours, digest). A push is ``pending`` or, inside quiet hours, not
    added at all (the row is in the app). The hourly cap is not counted
    here: the e-mail and push jobs apply it when they claim the delivery
    (``services/hourly_cap.py``), holding the mail for the next summary or
    dropping the push."""
    now = utcnow()
    email_status = email_error = None
    if has_address and preferences.allows_email(prefs, category):
        reason = pacing.hold_reason(prefs, now)
        email_status = DeliveryStatus.HELD if reason else DeliveryStatus.PENDING
        email_error = f"held: {reason}" if reason else None
    push = subscribed and preferences.allows_push(prefs, category) and pacing.push_allowed(prefs, now)
    return _Channels(email_status, email_error, email_status == DeliveryStatus.PENDING, push)


# ---- at and after commit -------------------------------------------------------


def _on_commit(row: Notification, wants_email: bool, wants_push: bool = False) -> None:
    """Tie the row's push (and e-mail job) to the commit of its transaction
    (``transactions``): its seq is copied into the payload at the outermost
    commit, while the session can still read it; the push goes out after
    it. A row deleted again in the same transaction is not sent."""
    item = _Pending(row.user_id, row, row.to_dict(), wants_email, wants_push)

    def prepare() -> None:
        sequences.assign_pending()  # idempotent; numbers the transaction's rows now
        if inspect(row).persistent:
            item.payload["seq"] = row.seq
            transactions.after_commit(lambda: dispatch_committed([item]))

    transactions.before_commit(prepare)


def dispatch_committed(pending: list[_Pending], *, forget_cached: bool = False) -> None:
    """Push committed notifications to sockets in one Redis round trip
    (with ``forget_cached``, the same round trip first forgets the
    recipients' cached count and page: ``notification_cache``), then
    enqueue their e-mail and push jobs in another (``jobqueue.batch``).

    Failures here never undo the stored row: the row is the record, a
    missed push is recovered by the socket's ``since`` catch-up, and a
    delivery left ``pending`` shows in the database and is re-enqueued by
    its sweep.
    """
    try:
        pipe = get_redis().pipeline(transaction=False)
        if forget_cached:
            notification_cache.forget_into(pipe, [item.user_id for item in pending])
        for item in pending:
            realtime.notification_created(item.user_id, item.payload, client=pipe)
        pipe.execute()
    except Exception:  # noqa: BLE001 - Redis down must not lose the row
        current_app.logger.exception("push of notifications %s failed", [i.payload["id"] for i in pending])
    jobs = [item for item in pending if item.wants_email or item.wants_push]
    if not jobs:
        return
    try:
        with jobqueue.batch() as pipeline:
            for item in jobs:
                if item.wants_email:
                    email.enqueue_delivery(item.payload["id"], pipeline)
                if item.wants_push:
                    webpush.enqueue_delivery(item.payload["id"], pipeline)
    except Exception:  # noqa: BLE001 - the deliveries stay pending; their sweeps re-enqueue them
        current_app.logger.exception("job enqueue of notifications %s failed", [i.payload["id"] for i in jobs])


# ---- reads ---------------------------------------------------------------------


def _unread(user_id: str):
    # ``is_read = false`` spelled as a literal so PostgreSQL matches the
    # partial index ix_notifications_unread (WHERE is_read = false).
    return (Notification.user_id == user_id, Notification.is_read == false())


def _unread_core(user_id: Any):
    # _unread on the table's columns: SQLAlchemy Core, no ORM compile step.
    table = Notification.__table__.c
    return (table.user_id == user_id, table.is_read == false())


_UID = bindparam("uid", type_=String)


@functools.cache
def _unread_count_statement() -> Any:
    # Built once: building a statement costs more than running a cached one.
    return select(func.count()).select_from(Notification.__table__).where(*_unread_core(_UID))


def unread_count(user_id: str) -> int:
    """The number of unread notifications: an index-only count over the
    partial index ``ix_notifications_unread`` (docs/NOTIFICATIONS.md).
    One Core statement, no ORM step (``transactions.read``: outside a
    transaction, no BEGIN/ROLLBACK)."""
    return transactions.read(_unread_count_statement(), {"uid": user_id})[0][0] or 0


def cached_unread_count(user_id: str) -> int:
    """``unread_count`` for a client that polls it: from Redis while no
    change has committed since it was counted (``services/notification_cache``:
    one ``HMGET``, no database round trip), else counted and cached."""
    cached, generation = notification_cache.lookup(user_id, notification_cache.COUNT)
    if cached is not None:
        return int(cached)
    count = unread_count(user_id)
    if generation is not None:
        notification_cache.fill(user_id, notification_cache.COUNT, generation, count)
    return count


def latest_seq(user_id: str) -> int:
    """The user's last committed seq (0 before the first notification): every
    row with a seq up to it has committed, every later row gets a higher one."""
    return db.session.scalar(
        select(NotificationSequence.last_seq).where(NotificationSequence.user_id == user_id)
    ) or 0


def unread_snapshot(user_id: str) -> tuple[int, int]:
    """``(unread count, watermark)`` read in ONE statement, i.e. one snapshot:
    the count covers exactly the rows with ``seq <= watermark``. A socket
    counts one more unread only for rows above the watermark, so a row
    committed just before the read is never counted twice."""
    count = select(func.count()).select_from(Notification).where(*_unread(user_id)).scalar_subquery()
    last = (select(NotificationSequence.last_seq)
            .where(NotificationSequence.user_id == user_id).scalar_subquery())
    unread, watermark = db.session.execute(select(count, func.coalesce(last, 0))).one()
    return unread or 0, watermark or 0


def check_category(category: str | None) -> str | None:
    """None or a known category. Raises ValidationError."""
    if category is not None and category not in NOTIFICATION_CATEGORIES:
        raise ValidationError(f"category must be one of: {', '.join(NOTIFICATION_CATEGORIES)}.")
    return category


def list_notifications(
    user_id: str, *, limit: int, before_id: int | None = None, category: str | None = None,
    unread_only: bool = False,
) -> tuple[list[Notification], int | None]:
    """One keyset page, newest first: rows with ``id < before_id``.

    Returns (rows, next_before_id or None when this is the last page).
    Raises ValidationError for an unknown category.
    """
    check_category(category)
    query = select(Notification).where(Notification.user_id == user_id)
    if category:
        query = query.where(Notification.category == category)
    if unread_only:
        query = query.where(Notification.is_read == false())
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    rows = list(db.session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    next_id = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_id


def read_rows(user_id: str, *, ids: list[int] | None = None, up_to_id: int | None = None,
              limit: int = 50) -> list[Notification]:
    """The user's read rows among ``ids``, or the newest ``limit`` read rows
    with an id up to ``up_to_id`` (after "mark all read"), newest first: what
    other tabs re-render to show them read."""
    query = select(Notification).where(Notification.user_id == user_id, Notification.is_read == true())
    if ids is not None:
        query = query.where(Notification.id.in_([min(i, MAX_ID) for i in ids]))
    if up_to_id is not None:
        query = query.where(Notification.id <= min(up_to_id, MAX_ID))
    return list(db.session.scalars(query.order_by(Notification.id.desc()).limit(limit)))


_PAGE_COLUMNS = ("id", "seq", "category", "subtype", "title", "body", "link", "data", "is_read",
                 "read_at", "created_at", "group_key")


@functools.cache
def _page_statement(by_category: bool, unread_only: bool, before: bool) -> Any:
    """The statement of ``notification_page`` for one combination of filters,
    built once; parameters ``uid``, ``category``, ``before_id``, ``limit``."""
    table = Notification.__table__.c
    count = select(func.count()).select_from(Notification.__table__).where(*_unread_core(_UID)).scalar_subquery()
    query = select(*(table[name] for name in _PAGE_COLUMNS), count.label("unread")).where(table.user_id == _UID)
    if by_category:
        query = query.where(table.category == bindparam("category", type_=String))
    if unread_only:
        query = query.where(table.is_read == false())
    if before:
        query = query.where(table.id < bindparam("before_id", type_=BigInteger))
    return query.order_by(table.id.desc()).limit(bindparam("limit", type_=Integer))


def notification_page(
    user_id: str, *, limit: int, before_id: int | None = None, category: str | None = None,
    unread_only: bool = False,
) -> tuple[list[dict[str, Any]], int | None, int]:
    """``list_notifications`` as the JSON list wants it, in one statement:
    ``(items in Notification.to_dict's shape, next_before_id or None, the
    unread count)``. Core rows of the page's columns (no ORM objects), the
    unread count as a scalar subquery of the same statement (one snapshot).
    The newest page without filters comes from ``notification_cache`` while
    no change has committed since it was read. Raises ValidationError for an
    unknown category."""
    check_category(category)
    if before_id is None and category is None and not unread_only:
        # The newest page, what clients poll: cached until the next change.
        slot = notification_cache.page_slot(limit)
        cached, generation = notification_cache.lookup(user_id, slot)
        if cached is not None:
            items, next_id, unread = orjson.loads(cached)
            return items, next_id, unread
        page = _notification_page(user_id, limit, None, None, False)
        if generation is not None:
            try:
                notification_cache.fill(user_id, slot, generation, orjson.dumps(page).decode())
            except orjson.JSONEncodeError:  # data orjson cannot write exactly (an integer beyond 64 bits)
                pass
        return page
    return _notification_page(user_id, limit, before_id, category, unread_only)


def _notification_page(user_id: str, limit: int, before_id: int | None, category: str | None,
                       unread_only: bool) -> tuple[list[dict[str, Any]], int | None, int]:
    rows = transactions.read(_page_statement(bool(category), unread_only, before_id is not None),
                             {"uid": user_id, "category": category, "before_id": before_id, "limit": limit + 1})
    if not rows:
        return [], None, unread_count(user_id)
    items = [
        {"id": r[0], "seq": r[1], "category": r[2], "subtype": r[3], "title": r[4], "body": r[5], "link": r[6],
         "data": r[7], "is_read": r[8], "read_at": iso(r[9]), "created_at": iso(r[10]), "group_key": r[11]}
        for r in rows[:limit]
    ]
    return items, rows[limit - 1][0] if len(rows) > limit else None, rows[0][12]


def after_seq(user_id: str, after: int, *, up_to: int | None = None, limit: int = 200) -> list[Notification]:
    """Socket catch-up: the user's notifications with ``after < seq <= up_to``
    (no upper bound when None), in seq (= commit) order, at most ``limit``.
    Uses the unique index (user_id, seq)."""
    query = select(Notification).where(Notification.user_id == user_id, Notification.seq > after)
    if up_to is not None:
        query = query.where(Notification.seq <= up_to)
    return list(db.session.scalars(query.order_by(Notification.seq).limit(limit)))


def cursor_after_id(user_id: str, since_id: int) -> int:
    """The seq cursor for a client that says "I have seen notification
    ``since_id``" (API.md ``?since=``): send every row with a seq above it
    and nothing is skipped.

    The socket sends rows in seq order, so a client that saw row X has seen
    every row with a lower seq: its own row's seq is a safe cursor. A
    ``since_id`` that is not one of the user's rows (deleted, purged,
    someone else's, made up) gives the ``seq_floor`` of the user's newest row
    with a lower id (or 0): that row took its floor before X took its id, and
    X took its seq only after, so the floor is below X's seq — a few rows may
    come again (clients drop duplicates by id), none is skipped. Nothing
    about another user's row is read.
    """
    own = db.session.scalar(
        select(Notification.seq).where(Notification.id == min(since_id, MAX_ID), Notification.user_id == user_id)
    )
    if own is not None:
        return own
    floor = db.session.scalar(
        select(func.coalesce(Notification.seq_floor, 0))
        .where(Notification.user_id == user_id, Notification.id < min(since_id, MAX_ID))
        .order_by(Notification.id.desc())
        .limit(1)
    )
    return floor or 0


def latest_id(user_id: str) -> int:
    """The id of the user's newest notification, 0 when there is none."""
    return db.session.scalar(select(func.max(Notification.id)).where(Notification.user_id == user_id)) or 0


def get_own(user_id: str, notification_id: int) -> Notification:
    """The user's notification. Someone else's and a missing id are the same
    NotFound (404)."""
    row = db.session.get(Notification, notification_id) if 0 < notification_id <= MAX_ID else None
    if row is None or row.user_id != user_id:
        raise NotFound("No such notification.")
    return row


# ---- changes (each commits, then syncs the count to every open socket) -------------


def _publish_count(user_id: str, **changed: Any) -> int:
    """Publish the new unread count and what changed (``read``,
    ``read_up_to``, ``deleted``: ``realtime.unread_count_changed``)."""
    count = unread_count(user_id)
    db.session.commit()  # end the read transaction before the Redis hop
    try:
        realtime.unread_count_changed(user_id, count, **changed)
    except Exception:  # noqa: BLE001 - the change is stored; sockets resync on reconnect
        current_app.logger.exception("unread count push for %s failed", user_id)
    return count


def mark_read(user_id: str, notification_id: int) -> Notification:
    """Mark one notification read (idempotent: ``read_at`` keeps the first
    time). Raises NotFound, also when it is deleted meanwhile."""
    row = get_own(user_id, notification_id)
    if not row.is_read:
        row.is_read, row.read_at = True, utcnow()
        try:
            db.session.commit()
        except StaleDataError:  # deleted by another request since get_own read it
            db.session.rollback()
            raise NotFound("No such notification.") from None
        _publish_count(user_id, read=[notification_id])
    return row


def mark_all_read(user_id: str, *, up_to_id: int | None = None) -> int:
    """Mark read every unread notification that existed when asked: ids up to
    the watermark ``up_to_id``, by default the newest id at call time, so a
    notification arriving meanwhile stays unread. Returns how many changed."""
    watermark = latest_id(user_id) if up_to_id is None else min(up_to_id, MAX_ID)
    marked = execute_dml(
        update(Notification)
        .where(*_unread(user_id), Notification.id <= watermark)
        .values(is_read=True, read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if marked:
        notification_cache.forget([user_id])  # a Core UPDATE: no ORM event does it
        db.session.expire_all()
        _publish_count(user_id, read_up_to=watermark)
    return marked


def delete_notification(user_id: str, notification_id: int) -> None:
    """Delete one of the user's notifications. Raises NotFound, also to the
    loser of two concurrent deletes of one notification (one statement that
    finds the row under its lock, instead of a read then a delete that may
    match nothing)."""
    deleted = 0 < notification_id <= MAX_ID and db.session.execute(
        delete(Notification).where(Notification.id == notification_id, Notification.user_id == user_id)
        .returning(Notification.id)
    ).first() is not None
    db.session.commit()
    if not deleted:
        raise NotFound("No such notification.")
    notification_cache.forget([user_id])  # a Core DELETE: no ORM event does it
    # Also when it was read: other tabs drop the item (the count is re-read anyway).
    _publish_count(user_id, deleted=[notification_id])


def purge_older_than(cutoff, *, batch_size: int = 5000) -> int:
    """Delete notifications created before ``cutoff`` (aware datetime) in
    batches of ``batch_size`` ids, committing each. Returns the total."""
    total = 0
    while True:
        ids = select(Notification.id).where(Notification.created_at < cutoff).limit(batch_size)
        owners = db.session.execute(
            delete(Notification).where(Notification.id.in_(ids)).returning(Notification.user_id)
            .execution_options(synchronize_session=False)
        ).scalars().all()
        db.session.commit()
        notification_cache.forget(owners)  # a Core DELETE: no ORM event does it
        deleted = len(owners)
        total += deleted
        if deleted < batch_size:
            return total
