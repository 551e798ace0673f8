"""Cooperatives: teams of at most 20 miners joined by an invite code
(seed 000 §7.3, API.md "Coop rules").

Every rule holds under concurrent requests because the database enforces it:

- the member cap is a conditional ``UPDATE cooperatives SET member_count =
  member_count + 1 WHERE id = :id AND status = 'active' AND invite_code =
  :code AND member_count < 20 RETURNING ...`` in the same transaction as the
  membership insert. The UPDATE takes the coop's row lock, so concurrent joins
  of one coop queue up, and under READ COMMITTED each re-evaluates its WHERE
  on the newest row version once the lock is free: the 21st join matches no
  row. Re-checking ``invite_code`` in the same WHERE means a join with the old
  code can never succeed once a regeneration has committed;
- one active coop per user and one active admin per coop are partial unique
  indexes on ``cooperative_members``; a violation becomes 409
  ``already_in_coop``, never a 500;
- invite codes are unique among active coops by a partial unique index; a
  collision retries with a fresh code;
- every other change to a coop (leave, remove, regenerate, edit, dissolve)
  first locks the coop row (``SELECT ... FOR UPDATE``), so member counts,
  admin hand-over and dissolution are decided on current data.

Services take the acting user and keyword arguments, commit their own
transaction, return models and raise ``services.errors`` domain errors.
Reads of a dissolved coop answer 404 ``not_found``; actions on one answer 409
``coop_dissolved`` (docs/COOPS.md).

Modules: ``lookups`` (constants, guards, announcements), ``changes`` (every
write), ``views`` (what members see). This package re-exports their public
names; the demo coops live in ``services/demo.py``.
"""
from __future__ import annotations

from ..invites import INVITE_CODE_LENGTH, generate_invite_code, normalise_invite_code
from .changes import (
    create,
    dissolve,
    dissolve_locked,
    join,
    leave,
    leave_in_transaction,
    regenerate_code,
    remove_locked,
    remove_member,
    update_details,
)
from .coop_invites import (
    JoinTarget,
    NotModerator,
    create_invite,
    list_invites,
    preview,
    revoke_invite,
)
from .discovery import (
    DirectoryEntry,
    approve_request,
    decline_request,
    directory,
    list_requests,
    my_pending_request,
    request_to_join,
    update_discovery,
)
from .lookups import (
    COOP_LINK,
    DESCRIPTION_MAX,
    INVITE_CODE_ATTEMPTS,
    MAX_COOP_ID,
    NAME_MAX,
    NAME_MIN,
    UQ_ACTIVE_INVITE_CODE,
    UQ_ONE_ACTIVE_PER_USER,
    UQ_ONE_ADMIN_PER_COOP,
    CodeFactory,
    active_membership,
    announce_on_commit,
    display_name,
    get_for_member,
    get_mine,
    is_admin,
    lock_active_coop,
)
from .timeline import TimelineEntry, timeline
from .views import (
    ANONYMOUS_MEMBER,
    CoopHashrate,
    CoopStats,
    MemberInfo,
    dashboard,
    departure,
    hashrate,
    hashrate_chart,
    list_members,
    members_of,
    stats,
)

__all__ = [
    "departure",
    "INVITE_CODE_LENGTH", "generate_invite_code", "normalise_invite_code",
    "create", "dissolve", "dissolve_locked", "join", "leave", "leave_in_transaction", "regenerate_code", "remove_locked", "remove_member",
    "update_details",
    "COOP_LINK", "DESCRIPTION_MAX", "INVITE_CODE_ATTEMPTS", "MAX_COOP_ID", "NAME_MAX", "NAME_MIN",
    "UQ_ACTIVE_INVITE_CODE", "UQ_ONE_ACTIVE_PER_USER", "UQ_ONE_ADMIN_PER_COOP", "CodeFactory",
    "active_membership", "announce_on_commit", "display_name", "get_for_member", "get_mine", "is_admin",
    "lock_active_coop", "preview",
    "DirectoryEntry", "approve_request", "decline_request", "directory", "list_requests", "my_pending_request",
    "request_to_join", "update_discovery",
    "TimelineEntry", "timeline",
    "JoinTarget", "NotModerator", "create_invite", "list_invites", "revoke_invite",
    "CoopHashrate", "CoopStats", "MemberInfo", "dashboard", "hashrate", "list_members", "members_of", "stats",
    "ANONYMOUS_MEMBER", "hashrate_chart",
]
