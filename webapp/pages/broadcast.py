"""Pages: the platform-admin broadcast (``/admin/broadcast``)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_broadcast", __name__)
