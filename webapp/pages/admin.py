"""Pages: admin."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_admin", __name__)
