"""Pages: notifications."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_notifications", __name__)
