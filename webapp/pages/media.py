"""Stored profile images (``/media/<key>``). The key holds a hash of the
content, so a URL never changes meaning: served with a one-year immutable
cache. Only keys of the stored shape are looked up (``media.KEY_RE``)."""
from __future__ import annotations

from flask import Blueprint, Response, abort, request

from ..services import media

bp = Blueprint("pages_media", __name__)


@bp.get("/media/<path:key>")
def media_file(key: str):
    """One stored image (WebP), or 404."""
    if not media.KEY_RE.fullmatch(key):
        abort(404)
    data = media.storage().get(key)
    if data is None:
        abort(404)
    response = Response(data, mimetype=media.CONTENT_TYPE)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.set_etag(key.rsplit("/", 1)[-1])
    return response.make_conditional(request)
