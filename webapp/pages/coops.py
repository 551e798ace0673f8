"""Pages: coops."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages_coops", __name__)
