"""Uploaded profile images: checked, re-encoded and stored (API.md
"Profiles": ``PUT /api/profile/avatar`` and ``/banner``).

Checks, in order (each before any pixel is decoded):

1. at most ``MEDIA_MAX_UPLOAD`` bytes (2 MiB) → 413 ``image_too_large``;
2. the type is read from the content, never the name or the declared type:
   PNG, JPEG or WebP signatures only (an SVG, a GIF, HTML, a ZIP are 415
   ``unsupported_media``); Pillow must then open it as that same format;
3. at most ``MAX_PIXELS`` (24 megapixels) from the header → 413: a small
   file that would decode to a huge bitmap (a decompression bomb) is never
   decoded; Pillow's own bomb guard is on as a second wall;
4. at least the kind's minimum size → 400 ``image_too_small``.

Then the image is turned upright (EXIF orientation), centre-cropped to the
kind's aspect ratio, resized to the sizes the pages use and re-encoded as
WebP from its pixels alone: no EXIF, GPS, ICC or XMP block and no trailing
bytes of a polyglot survive. Files are named by a hash of their owner and
content (``avatars/<hash>-512.webp``), so a URL never changes meaning and is
served with a one-year immutable cache.

Storage is a small interface (``Storage``: put/get/delete by key) chosen
when the app is created (``init_app``) by ``MEDIA_STORAGE``: ``local``
(files under ``MEDIA_ROOT``, ``instance/media`` by default), ``s3`` (objects
in the S3-compatible bucket ``MEDIA_S3_BUCKET``: AWS S3, MinIO, R2, ...) or a
dotted path to a factory ``f(app) -> Storage``. Whatever the store, images
are served by the app at ``/media/<key>`` (pages/media.py), so the URLs in
pages and JSON are the same for every store (docs/DEPLOYMENT.md "Uploaded
images").
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from flask import Flask, current_app
from PIL import Image, ImageOps
from rq.utils import import_attribute

from .errors import ImageTooLarge, ImageTooSmall, UnsupportedMedia

MAX_PIXELS = 24_000_000
CONTENT_TYPE = "image/webp"
# A key names its content (a hash): whoever holds a copy may keep it for a year.
CACHE_CONTROL = "public, max-age=31536000, immutable"
KEY_RE = re.compile(r"(avatars|banners)/[0-9a-f]{40}-[0-9]{2,4}\.webp")


@dataclass(frozen=True)
class Kind:
    """An image kind: aspect ratio (width / height), the smallest accepted
    upload, and the sizes stored (widths; the first is the main one)."""

    name: str
    ratio: float
    min_width: int
    min_height: int
    widths: tuple[int, ...]


KINDS = {
    "avatar": Kind("avatars", 1.0, 512, 512, (512, 128)),
    "banner": Kind("banners", 3.0, 900, 300, (1500, 600)),
}


class Storage(Protocol):
    """Where image files live; keys are ``KEY_RE`` strings."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class LocalStorage:
    """Files under a folder (the embedded default: ``instance/media``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not KEY_RE.fullmatch(key):
            raise ValueError("not a media key")
        return self.root / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a file

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, ValueError):
            pass


AddressingStyle = Literal["auto", "path", "virtual"]
ADDRESSING_STYLES: dict[str, AddressingStyle] = {"auto": "auto", "path": "path", "virtual": "virtual"}


class S3Storage:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...),
    named ``<prefix><key>``. Each is written with its content type and
    ``CACHE_CONTROL`` (the key carries a hash of the content, so an object
    never changes). ``get`` of a missing object is None and ``delete`` of one
    is a no-op (idempotent); any other failure of the store (unreachable,
    access denied, after botocore's retries) raises ``botocore``'s error.

    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance or task role);
    ``endpoint_url`` points at a store other than AWS; ``addressing_style``
    is ``auto``, ``path`` (MinIO and most self-hosted stores) or ``virtual``.
    The boto3 client is thread-safe and made once per app.
    """

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, addressing_style: AddressingStyle = "auto") -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        config = BotoConfig(
            connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": addressing_style},
            # Checksums only where S3 requires them: several S3-compatible
            # stores refuse the newer default (aws-chunked CRC trailers).
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)

    def _key(self, key: str) -> str:
        if not KEY_RE.fullmatch(key):
            raise ValueError("not a media key")
        return self.prefix + key

    @staticmethod
    def _missing(exc: Exception) -> bool:
        """Whether a botocore ClientError says the object does not exist."""
        error = getattr(exc, "response", None) or {}
        return str(error.get("Error", {}).get("Code")) in {"NoSuchKey", "404", "NotFound"}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write one object (a whole PUT: readers never see half of it)."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                               ContentType=content_type, CacheControl=CACHE_CONTROL)

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it (or a key of that shape) does not exist."""
        from botocore.exceptions import ClientError

        try:
            name = self._key(key)
        except ValueError:
            return None
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise
        body = response["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Remove one object; nothing happens when it is already gone."""
        from botocore.exceptions import ClientError

        try:
            name = self._key(key)
        except ValueError:
            return
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if not self._missing(exc):  # S3 answers 204 either way; some compatible stores 404
                raise


def build_storage(app: Flask) -> Storage:
    """The store the app's config asks for (``MEDIA_STORAGE`` and its
    settings; see the module doc). Raises RuntimeError naming the setting
    when one is missing or wrong, so that a misconfigured process stops at
    start-up instead of failing its first upload."""
    config: Mapping[str, Any] = app.config
    name = (config.get("MEDIA_STORAGE") or "local").strip()
    if name == "local":
        return LocalStorage(config["MEDIA_ROOT"])
    if name == "s3":
        bucket = (config.get("MEDIA_S3_BUCKET") or "").strip()
        if not bucket:
            raise RuntimeError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET: the name of the bucket that holds "
                               "avatars and banners (docs/DEPLOYMENT.md \"Uploaded images\").")
        raw_style = (config.get("MEDIA_S3_ADDRESSING_STYLE") or "auto").strip()
        style = ADDRESSING_STYLES.get(raw_style)
        if style is None:
            raise RuntimeError(f"MEDIA_S3_ADDRESSING_STYLE must be one of {', '.join(ADDRESSING_STYLES)}, "
                               f"not {raw_style!r}.")
        return S3Storage(bucket, prefix=config.get("MEDIA_S3_PREFIX") or "",
                         endpoint_url=config.get("MEDIA_S3_ENDPOINT_URL") or None,
                         region=config.get("MEDIA_S3_REGION") or None, addressing_style=style)
    try:
        factory = import_attribute(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise RuntimeError(f"MEDIA_STORAGE must be 'local', 's3' or the dotted path of a factory "
                           f"f(app) -> store; {name!r} cannot be imported ({exc}).") from None
    return factory(app)


def init_app(app: Flask) -> None:
    """Choose the store at app creation (``app.extensions["media_storage"]``).
    Raises RuntimeError for a missing or wrong setting (``build_storage``)."""
    app.extensions["media_storage"] = build_storage(app)


def storage() -> Storage:
    """The store chosen at app creation (``init_app``)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    store = app.extensions.get("media_storage")
    if store is None:  # an app built without create_app
        store = app.extensions["media_storage"] = build_storage(app)
    return store


def sniff(data: bytes) -> str:
    """The format by signature: ``PNG``, ``JPEG`` or ``WEBP``. Raises UnsupportedMedia."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise UnsupportedMedia()


def _open(data: bytes) -> Image.Image:
    fmt = sniff(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(f"The image has too many pixels (at most {MAX_PIXELS // 1_000_000} megapixels).")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"The image has too many pixels (at most {MAX_PIXELS // 1_000_000} megapixels).") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise UnsupportedMedia("The file is not a readable PNG, JPEG or WebP image.") from None
    return image


def _crop(image: Image.Image, ratio: float) -> Image.Image:
    width, height = image.size
    if width / height > ratio:
        new_width = round(height * ratio)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = round(width / ratio)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def process(data: bytes, kind: str) -> dict[int, bytes]:
    """The upload ``data`` checked and re-encoded as ``{width: webp bytes}``
    for the kind's widths (see the module doc). Raises ImageTooLarge (413),
    UnsupportedMedia (415), ImageTooSmall (400)."""
    spec = KINDS[kind]
    limit = int(current_app.config.get("MEDIA_MAX_UPLOAD", 2 * 1024 * 1024))
    if len(data) > limit:
        raise ImageTooLarge(f"The image is larger than {limit // (1024 * 1024)} MiB.")
    image = _open(data)
    image = ImageOps.exif_transpose(image)
    if image.width < spec.min_width or image.height < spec.min_height:
        raise ImageTooSmall(f"The {kind} must be at least {spec.min_width}×{spec.min_height} pixels.")
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    # A new image from the pixels alone: nothing of the upload's metadata comes along.
    pixels = _crop(image.convert(mode), spec.ratio)
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    out: dict[int, bytes] = {}
    for width in spec.widths:
        size = (width, round(width / spec.ratio))
        resized = clean.resize(size, Image.Resampling.LANCZOS) if clean.width > width else clean
        buffer = io.BytesIO()
        resized.save(buffer, format="WEBP", quality=85, method=4)
        out[width] = buffer.getvalue()
    return out


def store(user_id: str, kind: str, data: bytes) -> str:
    """Process and store an upload; returns its base key
    (``avatars/<hash>``; files are ``<base>-<width>.webp``)."""
    images = process(data, kind)
    digest = hashlib.sha1(user_id.encode() + b"\0" + data, usedforsecurity=False).hexdigest()
    base = f"{KINDS[kind].name}/{digest}"
    for width, blob in images.items():
        storage().put(f"{base}-{width}.webp", blob, CONTENT_TYPE)
    return base


def remove(kind: str, base: str | None) -> None:
    """Delete every stored size of ``base`` (no error when absent). Every
    size is tried even when one delete fails (a store outage mid-way must
    not strand the others); the first failure is raised afterwards."""
    if not base:
        return
    failures: list[Exception] = []
    for width in KINDS[kind].widths:
        try:
            storage().delete(f"{base}-{width}.webp")
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other sizes
            failures.append(exc)
    if failures:
        raise failures[0]


def url(kind: str, base: str | None, width: int | None = None) -> str | None:
    """The path of one stored size (the main one by default), or None."""
    if not base:
        return None
    return f"/media/{base}-{width or KINDS[kind].widths[0]}.webp"
