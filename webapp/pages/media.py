"""Stored profile images (``/media/<key>``). The key holds a hash of the
content, so a URL never changes meaning: served with a one-year immutable
cache. Only keys of the stored shape are looked up (``media.KEY_RE``).
Whatever the store (``MEDIA_STORAGE``: local files or an S3 bucket), the
bytes are served here, so image URLs are the same for every store."""
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
    response.headers["Cache-Control"] = media.CACHE_CONTROL
    response.set_etag(key.rsplit("/", 1)[-1])
    return response.make_conditional(request)
