"""JSON routes: public miner profiles (API.md endpoints 15 and 16)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_public", __name__)
