"""JSON routes: internal (API.md)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_internal", __name__)
