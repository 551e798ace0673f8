"""JSON routes: activity (API.md)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_activity", __name__)
