"""Pages: activity."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_activity", __name__)
