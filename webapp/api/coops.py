"""JSON routes: coops (API.md)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_coops", __name__)
