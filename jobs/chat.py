"""Chat jobs: retention of archived conversations."""
from __future__ import annotations

from flask import current_app

from .context import app_job


@app_job
def purge_archived_conversations() -> int:
    """Delete the conversations archived longer than
    CHAT_ARCHIVE_RETENTION_DAYS with their messages, reactions and members
    (``chat_retention.purge_archived``; daily). Returns how many
    conversations were deleted."""
    from webapp.services import chat_retention

    result = chat_retention.purge_archived()
    current_app.logger.info("chat retention: archived %d abandoned conversations, deleted %d conversations "
                            "with %d messages", result.archived, result.conversations, result.messages)
    return result.conversations
