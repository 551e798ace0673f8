"""JSON routes: notifications (API.md)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_notifications", __name__)
