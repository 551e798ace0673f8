"""Coop moderation: mutes, bans, slow mode, keyword filters, reports and the
audit log (API.md "Coop governance"; issue "Coop chat, presence and
moderation", item 5).

The messaging core (``services/messages.py``) asks this module before it
stores a coop message and after, so the rules live in one place:

- ``screen_message`` before the insert: raises ``Muted`` (403 ``muted``,
  ``details.until``), ``SlowMode`` (429 ``slow_mode`` with ``Retry-After``)
  or ``MessageBlocked`` (400 ``message_blocked``); returns the phrases of
  ``flag`` keyword filters the body matched.
- ``file_flag_report`` after the insert, for those phrases.
- ``muted_until`` for the conversation object's ``muted_until``.
"""
from __future__ import annotations

from datetime import datetime


def screen_message(coop_id: int, user_id: str, body: str) -> list[str]:
    """Check a coop chat message before it is stored.

    Returns the ``flag`` filter phrases ``body`` matched (empty: nothing to
    report). Raises the moderation errors listed in the module docstring.
    """
    return []


def file_flag_report(coop_id: int, message_id: int, phrases: list[str]) -> None:
    """File a system report on a stored message that matched ``flag`` filters."""


def muted_until(coop_id: int, user_id: str) -> datetime | None:
    """When the member's mute in the coop ends (UTC), None when not muted."""
    return None
