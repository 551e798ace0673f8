"""A coop's timeline (issue "Coops people can find and join", item 5): what
happened in the coop, newest first — joins, leaves and removals, role
changes and hand-overs, new invites, and the members' personal bests and
blocks while they were members.

Nothing is written twice for it: each kind of entry is read from where it
is already stored (``cooperative_members``, ``coop_audit_log``,
``coop_invites``, the members' ``user_activity``), each source by its own
indexed query newest first, and the results merged. Pages are keyset on
(time, key) where ``key`` is "<kind>:<row id>", so entries recorded
meanwhile never shift a page. A member whose ``showInCoopRankings`` is false
is named "a member" in their personal bests and blocks, as in the rankings.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from ...extensions import db
from ...formatting import format_difficulty
from ...models import CoopAuditEntry, CooperativeMember, CoopInvite, User, UserActivity, iso
from ...vocabulary import MemberStatus, ModerationAction
from .. import preferences
from ..errors import ValidationError
from .lookups import get_for_member
from .views import ANONYMOUS_MEMBER

PAGE_MAX = 50
KINDS = ("joined", "left", "removed", "role_changed", "admin_transferred", "invite_created", "personal_best",
         "block_found")


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: ``at`` (aware UTC), ``kind`` (``KINDS``),
    the member it is about (None when hidden) and its sentence."""

    at: datetime
    kind: str
    key: str
    user_id: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "kind": self.kind, "user_id": self.user_id, "text": self.text}


def encode_cursor(entry: TimelineEntry) -> str:
    return base64.urlsafe_b64encode(json.dumps([iso(entry.at), entry.key]).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[datetime, str] | None:
    """The (time, key) of the last entry of the previous page. Raises ValidationError."""
    if not raw:
        return None
    try:
        at, key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(key, str) or len(key) > 64:
            raise ValueError
        return datetime.fromisoformat(at.replace("Z", "+00:00")), key
    except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not valid; use next_cursor from the previous page.") from None


def _before(column, before: tuple[datetime, str] | None):
    """Rows at or before the cursor time (exact ties are filtered by key in Python)."""
    return True if before is None else column <= before[0]


def timeline(user: User, *, coop_id: int, cursor: str | None = None,
             limit: int = 20) -> tuple[list[TimelineEntry], str | None]:
    """One page of the coop's timeline for a member, newest first. Returns
    (entries, next_cursor or None). Raises ValidationError (400), NotFound
    (404) or NotAMember (403)."""
    if not 1 <= limit <= PAGE_MAX:
        raise ValidationError(f"limit must be 1–{PAGE_MAX}.")
    before = decode_cursor(cursor)
    coop = get_for_member(user, coop_id=coop_id)
    take = limit + 1
    found: list[TimelineEntry] = []
    founder_row = _first_id(coop.id)
    members = CooperativeMember
    joined = db.session.scalars(select(members).where(members.cooperative_id == coop.id,
                                                      _before(members.joined_at, before))
                                .order_by(members.joined_at.desc(), members.id.desc()).limit(take)).all()
    departed = db.session.scalars(select(members).where(members.cooperative_id == coop.id,
                                                        members.left_at.is_not(None), _before(members.left_at, before))
                                  .order_by(members.left_at.desc(), members.id.desc()).limit(take)).all()
    audit = CoopAuditEntry
    wanted = (ModerationAction.ROLE_CHANGED.value, ModerationAction.ADMIN_TRANSFERRED.value)
    actions = db.session.scalars(select(audit).where(audit.cooperative_id == coop.id, audit.action.in_(wanted),
                                                     _before(audit.created_at, before))
                                 .order_by(audit.created_at.desc(), audit.id.desc()).limit(take)).all()
    invite = CoopInvite
    invites = db.session.scalars(select(invite).where(invite.cooperative_id == coop.id,
                                                      _before(invite.created_at, before))
                                 .order_by(invite.created_at.desc(), invite.id.desc()).limit(take)).all()
    name = _Names(user.user_id)
    name.want([m.user_id for m in (*joined, *departed)] + [a.actor_user_id for a in actions]
              + [a.target_user_id for a in actions] + [i.created_by for i in invites])
    for m in joined:
        found.append(TimelineEntry(m.joined_at, "joined", f"joined:{m.id:012d}", m.user_id,
                                   "".join((name(m.user_id), " founded the cooperative" if m.id == founder_row else " joined"))))
    for m in departed:
        kind = "removed" if m.status == MemberStatus.REMOVED else "left"
        found.append(TimelineEntry(m.left_at, kind, f"{kind}:{m.id:012d}", m.user_id,  # type: ignore[arg-type]
                                   f"{name(m.user_id)} " + ("was removed" if kind == "removed" else "left")))
    for a in actions:
        if a.action == ModerationAction.ROLE_CHANGED:
            role = (a.data or {}).get("to", "member")
            text = f"{name(a.actor_user_id)} made {name(a.target_user_id)} a {role}"
        else:
            text = f"{name(a.actor_user_id)} handed the cooperative over to {name(a.target_user_id)}"
        found.append(TimelineEntry(a.created_at, a.action, f"{a.action}:{a.id:012d}", a.target_user_id, text))
    for i in invites:
        limits = [f"{i.max_uses} use{'s' if i.max_uses != 1 else ''}"] if i.max_uses else []
        if i.expires_at:
            limits.append(f"until {i.expires_at:%Y-%m-%d %H:%M} UTC")
        found.append(TimelineEntry(i.created_at, "invite_created", f"invite_created:{i.id:012d}", i.created_by,
                                   f"{name(i.created_by)} made an invite" + (f" ({', '.join(limits)})" if limits else "")))
    found += _mining_entries(coop.id, before, take, name)
    if before is not None:
        found = [e for e in found if (e.at, e.key) < before]
    found.sort(key=lambda e: (e.at, e.key), reverse=True)
    # A sentence may start with "a member": capitalise that, never a name (bc1q…).
    page = [replace(e, text=ANONYMOUS_MEMBER.capitalize() + e.text[len(ANONYMOUS_MEMBER):])
            if e.text.startswith(ANONYMOUS_MEMBER) else e for e in found[:limit]]
    db.session.commit()
    return page, (encode_cursor(page[-1]) if len(found) > limit else None)


class _Names:
    """The names in the timeline's sentences: a member's display name, or
    "a member" when they hide from coop rankings (as in the members table);
    the viewer always sees their own; "someone" for no one. Ids announced
    with ``want`` are looked up together at the first name asked for (two
    queries a batch, not two per member)."""

    def __init__(self, viewer_id: str) -> None:
        self.viewer_id = viewer_id
        self.known: dict[str, str] = {}
        self.wanted: set[str] = set()

    def want(self, user_ids: list[str | None]) -> None:
        self.wanted.update(u for u in user_ids if u is not None and u not in self.known)

    def __call__(self, user_id: str | None) -> str:
        if user_id is None:
            return "someone"
        if user_id not in self.known:
            self.want([user_id])
            ids = sorted(self.wanted)
            self.wanted.clear()
            hidden = preferences.hidden_from_rankings(ids)
            shown = dict(db.session.execute(select(User.user_id, User.display_name).where(User.user_id.in_(ids))).all())
            for uid in ids:
                self.known[uid] = (ANONYMOUS_MEMBER if uid != self.viewer_id and uid in hidden
                                   else shown.get(uid) or uid)
        return self.known[user_id]


def _first_id(coop_id: int) -> int | None:
    return db.session.scalar(select(CooperativeMember.id).where(CooperativeMember.cooperative_id == coop_id)
                             .order_by(CooperativeMember.id).limit(1))


def _mining_entries(coop_id: int, before, take: int, name: _Names) -> list[TimelineEntry]:
    """Personal bests and blocks of the active members since they joined."""
    members = list(db.session.execute(
        select(CooperativeMember.user_id, CooperativeMember.joined_at).where(
            CooperativeMember.cooperative_id == coop_id, CooperativeMember.status == MemberStatus.ACTIVE.value)))
    if not members:
        return []
    hidden = preferences.hidden_from_rankings(m.user_id for m in members)
    act = UserActivity
    since_joined = or_(*(and_(act.user_id == m.user_id, act.created_at >= m.joined_at) for m in members))
    wanted = or_(act.activity_type == "block_found",
                 and_(act.activity_type == "share_submitted", act.data["personal_best"].as_boolean().is_(True)))
    rows = db.session.scalars(select(act).where(since_joined, wanted, _before(act.created_at, before))
                              .order_by(act.created_at.desc(), act.id.desc()).limit(take)).all()
    name.want([row.user_id for row in rows if row.user_id not in hidden])
    entries = []
    for row in rows:
        shown = row.user_id not in hidden
        who = name(row.user_id) if shown else ANONYMOUS_MEMBER.capitalize()
        if row.activity_type == "block_found":
            height = (row.data or {}).get("height")
            text = f"{who} found block {height:,}!" if isinstance(height, int) else f"{who} found a block!"
            kind = "block_found"
        else:
            text = f"{who} set a personal best: {format_difficulty((row.data or {}).get('difficulty'))}"
            kind = "personal_best"
        entries.append(TimelineEntry(row.created_at, kind, f"{kind}:{row.id:012d}", row.user_id if shown else None,
                                     text))
    return entries
