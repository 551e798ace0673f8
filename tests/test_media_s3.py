"""Avatars and banners in an S3-compatible bucket (``MEDIA_STORAGE=s3``,
services/media.py ``S3Storage``), against a real S3-speaking server on
loopback (moto's, in a thread): what lands in the bucket (type,
Cache-Control, the re-encoded bytes), the URLs the profile JSON hands out,
and the deletes (replace, remove, account deletion). The choice of the store
at app creation fails fast on a missing setting."""
from __future__ import annotations

import io
import socket
import uuid
from pathlib import Path

import boto3
import pytest
from PIL import Image

from webapp import create_app
from webapp.services import media

from .builders import PASSWORD
from .conftest import base_config

PREFIX = "uploads/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port for this module."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Credentials for boto3's chain from the environment only (none of the machine's files or roles)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bucket(s3_endpoint, aws_env):
    """A new, empty bucket: ``(name, boto3 client)``."""
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    name = f"media-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name, client


@pytest.fixture
def s3_app(make_app, bucket, s3_endpoint, tmp_path):
    """An app on the test database whose uploads go to ``bucket`` (and whose
    local folder, were it used, is an empty temporary one)."""
    return make_app(MEDIA_STORAGE="s3", MEDIA_S3_BUCKET=bucket[0], MEDIA_S3_ENDPOINT_URL=s3_endpoint,
                    MEDIA_S3_PREFIX=f"/{PREFIX}", MEDIA_S3_ADDRESSING_STYLE="path",
                    MEDIA_ROOT=str(tmp_path / "media"))


def _objects(bucket) -> dict[str, bytes]:
    name, client = bucket
    listing = client.list_objects_v2(Bucket=name).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=name, Key=o["Key"])["Body"].read() for o in listing}


def _jpeg_with_gps(width: int = 800, height: int = 600) -> bytes:
    image = Image.new("RGB", (width, height), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (41.0, 9.0, 0.0), 3: "W", 4: (8.0, 37.0, 0.0)}
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def _png(width: int, height: int, color=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _put(client, headers, kind, data, name="x.jpg", content_type="image/jpeg"):
    return client.put(f"/api/profile/{kind}", data={"file": (io.BytesIO(data), name, content_type)},
                      headers=headers, content_type="multipart/form-data")


def test_an_avatar_lands_in_the_bucket_typed_cached_and_clean_and_its_url_serves_those_bytes(
        s3_app, bucket, make_user, auth_headers):
    user = make_user()
    client = s3_app.test_client()
    upload = _jpeg_with_gps()
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(0x8825)  # the upload carries GPS
    resp = _put(client, auth_headers(user), "avatar", upload)
    assert resp.status_code == 200
    own = resp.get_json()
    url, small_url = own["avatar_url"], own["avatar_small_url"]
    assert url.startswith("/media/avatars/") and url.endswith("-512.webp") and small_url.endswith("-128.webp")

    key = url.removeprefix("/media/")
    small_key = small_url.removeprefix("/media/")
    stored = _objects(bucket)
    assert set(stored) == {PREFIX + key, PREFIX + small_key}
    name, s3 = bucket
    for object_key, width in ((PREFIX + key, 512), (PREFIX + small_key, 128)):
        head = s3.head_object(Bucket=name, Key=object_key)
        assert head["ContentType"] == "image/webp"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        image = Image.open(io.BytesIO(stored[object_key]))
        assert image.format == "WEBP" and image.size == (width, width)
        assert not image.getexif() and "exif" not in image.info and "xmp" not in image.info
        assert b"SecretCam" not in stored[object_key] and b"GPS" not in stored[object_key]
    assert not Path(s3_app.config["MEDIA_ROOT"]).exists()  # nothing written to local disk

    # The URLs of the JSON (own and public profile) serve the bucket's bytes, cached for a year.
    assert client.get(f"/api/public/miners/{user.user_id}").get_json()["avatar_url"] == url
    assert client.get("/api/profile", headers=auth_headers(user)).get_json()["avatar_url"] == url
    served = client.get(url)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert served.data == stored[PREFIX + key]
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get(small_url).data == stored[PREFIX + small_key]

    # A new upload replaces both objects; DELETE removes them, twice is fine.
    second = _put(client, auth_headers(user), "avatar", _png(700, 700), "b.png", "image/png").get_json()
    assert second["avatar_url"] != url and client.get(url).status_code == 404
    assert set(_objects(bucket)) == {PREFIX + second["avatar_url"].removeprefix("/media/"),
                                     PREFIX + second["avatar_small_url"].removeprefix("/media/")}
    for _ in range(2):
        gone = client.delete("/api/profile/avatar", headers=auth_headers(user))
        assert gone.status_code == 200 and gone.get_json()["avatar_url"] is None
    assert _objects(bucket) == {}
    assert client.get(second["avatar_url"]).status_code == 404


def test_a_banner_is_stored_at_both_widths(s3_app, bucket, make_user, auth_headers):
    user = make_user()
    client = s3_app.test_client()
    body = _put(client, auth_headers(user), "banner", _png(1800, 900), "b.png", "image/png").get_json()
    stored = _objects(bucket)
    assert sorted(Image.open(io.BytesIO(data)).size for data in stored.values()) == [(600, 200), (1500, 500)]
    assert client.get(body["banner_url"]).data == stored[PREFIX + body["banner_url"].removeprefix("/media/")]


def test_deleting_the_account_removes_its_objects(s3_app, bucket, make_user, auth_headers):
    alice, bob = make_user(), make_user()
    client = s3_app.test_client()
    for user in (alice, bob):
        assert _put(client, auth_headers(user), "avatar", _jpeg_with_gps()).status_code == 200
    assert _put(client, auth_headers(alice), "banner", _png(900, 300), "b.png", "image/png").status_code == 200
    alices = client.get("/api/profile", headers=auth_headers(alice)).get_json()
    bobs = client.get("/api/profile", headers=auth_headers(bob)).get_json()
    assert len(_objects(bucket)) == 6  # two sizes each: two avatars, one banner

    resp = client.delete("/api/me", json={"password": PASSWORD}, headers=auth_headers(alice))
    assert resp.status_code == 200 and resp.get_json() == {"status": "deleted"}
    assert set(_objects(bucket)) == {PREFIX + bobs[k].removeprefix("/media/")
                                     for k in ("avatar_url", "avatar_small_url")}
    for k in ("avatar_url", "avatar_small_url", "banner_url", "banner_small_url"):
        assert client.get(alices[k]).status_code == 404
    assert client.get(bobs["avatar_url"]).status_code == 200


def test_the_store_keeps_to_media_keys_and_deletes_idempotently(s3_app, bucket):
    store = s3_app.extensions["media_storage"]
    assert isinstance(store, media.S3Storage) and store.prefix == PREFIX
    key = f"avatars/{'a' * 40}-512.webp"
    store.delete(key)  # never written: no error
    assert store.get(key) is None
    store.put(key, b"RIFF0000WEBP", "image/webp")
    assert store.get(key) == b"RIFF0000WEBP" and set(_objects(bucket)) == {PREFIX + key}
    store.delete(key)
    store.delete(key)
    assert store.get(key) is None and _objects(bucket) == {}
    with pytest.raises(ValueError):
        store.put("../secret", b"x", "image/webp")
    assert store.get("../secret") is None and store.get("avatars/x.webp") is None


def test_the_store_is_chosen_at_app_creation_and_fails_fast(migrated, session_app, aws_env):
    assert isinstance(session_app.extensions["media_storage"], media.LocalStorage)  # the default
    with pytest.raises(RuntimeError, match="MEDIA_S3_BUCKET"):
        create_app(base_config(migrated, MEDIA_STORAGE="s3"))
    with pytest.raises(RuntimeError, match="MEDIA_S3_ADDRESSING_STYLE"):
        create_app(base_config(migrated, MEDIA_STORAGE="s3", MEDIA_S3_BUCKET="b", MEDIA_S3_ADDRESSING_STYLE="dns"))
    with pytest.raises(RuntimeError, match="MEDIA_STORAGE must be"):
        create_app(base_config(migrated, MEDIA_STORAGE="no.such.factory"))
