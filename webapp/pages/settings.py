"""Pages: settings."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_settings", __name__)
