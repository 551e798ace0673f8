"""How our mails are written on the wire, and times as the reader reads them."""
from __future__ import annotations

from datetime import datetime
from email import policy as email_policy

from flask_mail import Message

# Header lines up to RFC 5322's hard limit (998) are written as they are:
# Python's SMTP policy folds at 78 and, for a header with no space to fold at
# (``List-Unsubscribe: <https://…/long-token>``), RFC 2047-encodes it, which
# mail providers do not read as an unsubscribe link.
SMTP_POLICY = email_policy.SMTP.clone(max_line_length=998)


class PlainHeaderMessage(Message):
    """Flask-Mail's Message serialised with ``SMTP_POLICY``: long
    ``List-Unsubscribe`` values go out as plain ``<https://…>``."""

    def _message(self):
        msg = super()._message()
        msg.policy = SMTP_POLICY
        return msg


def local_time(value: str | None, tz) -> str | None:
    """An ISO 8601 UTC time (``data.at``) as the user reads it in ``tz``:
    ``"Mon 30 Nov 2026, 03:12 CET"``; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return at.astimezone(tz).strftime("%a %d %b %Y, %H:%M %Z")


