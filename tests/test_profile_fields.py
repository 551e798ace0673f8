"""Profiles a miner owns (API.md "Profiles"): field rules, the confusable
name check, per-field visibility (stranger × friend × self), uploads through
Pillow, miner search, and blocks that look like a missing account."""
from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from PIL import Image

from webapp.extensions import db
from webapp.models import UserProfile
from webapp.services import accounts, friends, preferences

FIELDS_SHOWN = {"display_name": "Shelf Queen", "bio": "I mine **on shelves**", "pronouns": "she/her",
                "location": "Porto", "country_code": "PT"}


def _befriend(a, b) -> None:
    row, _ = friends.send_request(a, b.user_id)
    friends.accept(b, row.id)


def _patch(client, auth_headers, user, body):
    return client.patch("/api/profile", json=body, headers=auth_headers(user))


def _png(width: int, height: int, color=(200, 120, 40), **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _jpeg_with_gps(width: int = 800, height: int = 600) -> bytes:
    image = Image.new("RGB", (width, height), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    gps = {1: "N", 2: (41.0, 9.0, 0.0), 3: "W", 4: (8.0, 37.0, 0.0)}
    exif[0x8825] = gps
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def _put(client, auth_headers, user, kind, data, name="x.png", content_type="image/png"):
    return client.put(f"/api/profile/{kind}", data={"file": (io.BytesIO(data), name, content_type)},
                      headers=auth_headers(user), content_type="multipart/form-data")


# ---- fields -------------------------------------------------------------------------------


def test_own_profile_patch_and_defaults(client, make_user, auth_headers):
    user = make_user(display_name="Alice")
    own = client.get("/api/profile", headers=auth_headers(user)).get_json()
    assert own["visibility"] == {"display_name": "public", "avatar": "public", "country_code": "public",
                                 "banner": "connections", "bio": "connections", "pronouns": "connections",
                                 "location": "connections"}
    resp = _patch(client, auth_headers, user, {**FIELDS_SHOWN, "display_name": "  Ｓhelf   Queen "})
    assert resp.status_code == 200
    body = resp.get_json()
    # NFKC turns the full-width Ｓ into S; runs of spaces fold to one.
    assert body["display_name"] == "Shelf Queen" and body["pronouns"] == "she/her"
    assert body["bio_html"].strip() == "<p>I mine <strong>on shelves</strong></p>"
    assert db.session.get(UserProfile, user.user_id).name_key == "shelf queen"


@pytest.mark.parametrize("body", [
    {"display_name": "ab"}, {"display_name": "x" * 41}, {"bio": "b" * 281}, {"pronouns": "p" * 31},
    {"location": "l" * 61}, {"country_code": "XX"}, {"visibility": {"bio": "friends"}},
    {"visibility": {"email": "public"}}, {"nickname": "x"}, {"display_name": "two\nlines"},
    {"bio": "<script>alert(1)</script>" + "b" * 300},
])
def test_bad_profile_fields_are_400(client, make_user, auth_headers, body):
    user = make_user()
    resp = _patch(client, auth_headers, user, body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["code"] == "validation_error"


def test_bio_markdown_is_sanitised(client, make_user, auth_headers):
    user = make_user()
    body = _patch(client, auth_headers, user, {"bio": "<script>x</script> [a](javascript:alert(1))"}).get_json()
    assert "<script" not in body["bio_html"] and "href=\"javascript" not in body["bio_html"]
    assert "&lt;script&gt;" in body["bio_html"]


def test_a_confusable_imitation_of_another_name_is_refused(client, make_user, auth_headers):
    make_user(display_name="Alice")
    mallory = make_user(display_name="Mallory")
    cyrillic = "\u0410lice"  # Cyrillic А + Latin lice
    resp = _patch(client, auth_headers, mallory, {"display_name": cyrillic})
    assert resp.status_code == 400 and "imitates" in resp.get_json()["error"]["message"]
    greek = "Αlic\u0435"  # Greek Α and Cyrillic е
    assert _patch(client, auth_headers, mallory, {"display_name": greek}).status_code == 400
    # The same name spelt the same way is only a namesake: allowed.
    assert _patch(client, auth_headers, mallory, {"display_name": "alice"}).status_code == 200
    # At registration too.
    with pytest.raises(Exception) as info:
        accounts.register(user_id="bc1qimitator0001", password="correct-horse-1", display_name=cyrillic)
    assert "imitates" in str(info.value)


# ---- visibility matrix -------------------------------------------------------------------


LEVEL_FIELDS = {  # field -> the key(s) it shows as in the public profile
    "display_name": "display_name", "avatar": "avatar_url", "banner": "banner_url", "bio": "bio",
    "pronouns": "pronouns", "location": "location", "country_code": "country_code",
}


@pytest.mark.parametrize("field", sorted(LEVEL_FIELDS))
@pytest.mark.parametrize("level", ["public", "connections", "private"])
def test_visibility_matrix_stranger_friend_self(client, make_user, auth_headers, field, level):
    owner = make_user(display_name="Owner Name")
    friend, stranger = make_user(), make_user()
    _befriend(owner, friend)
    _patch(client, auth_headers, owner, {**FIELDS_SHOWN, "visibility": {field: level}})
    if field in ("avatar", "banner"):
        size = (600, 600) if field == "avatar" else (1200, 400)
        assert _put(client, auth_headers, owner, field, _png(*size)).status_code == 200
    key = LEVEL_FIELDS[field]
    expected = {"public": {"anonymous", "stranger", "friend", "self"},
                "connections": {"friend", "self"}, "private": {"self"}}[level]
    viewers = {"anonymous": {}, "stranger": auth_headers(stranger), "friend": auth_headers(friend),
               "self": auth_headers(owner)}
    for who, headers in viewers.items():
        body = client.get(f"/api/public/miners/{owner.user_id}", headers=headers).get_json()
        page = client.get(f"/miners/{owner.user_id}", headers=headers).get_data(as_text=True)
        if field == "display_name":
            shown = body["display_name"] == "Shelf Queen"
            assert ("Shelf Queen" in page) == (who in expected), (who, "page")
        elif field == "avatar":
            shown = body["avatar_url"] is not None
        else:
            shown = key in body and body[key] not in (None, "")
        assert shown == (who in expected), (who, body)
        if field in ("bio", "pronouns", "location") and who != "self":
            value = {"bio": "on shelves", "pronouns": "she/her", "location": "Porto"}[field]
            assert (value in page) == (who in expected), (who, "page")


# ---- uploads -----------------------------------------------------------------------------


def test_avatar_upload_is_cropped_resized_reencoded_and_served_cached(client, make_user, auth_headers):
    user = make_user()
    resp = _put(client, auth_headers, user, "avatar", _png(900, 600))
    assert resp.status_code == 200
    url = resp.get_json()["avatar_url"]
    assert url.startswith("/media/avatars/") and url.endswith("-512.webp")
    served = client.get(url)
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert "immutable" in served.headers["Cache-Control"] and "max-age=31536000" in served.headers["Cache-Control"]
    image = Image.open(io.BytesIO(served.data))
    assert image.format == "WEBP" and image.size == (512, 512)
    small = client.get(resp.get_json()["avatar_small_url"])
    assert Image.open(io.BytesIO(small.data)).size == (128, 128)
    assert client.get(f"/api/public/miners/{user.user_id}").get_json()["avatar_url"] == url
    # A new upload: a new URL (content hash); the old file is gone.
    second = _put(client, auth_headers, user, "avatar", _png(700, 700, (1, 2, 3))).get_json()["avatar_url"]
    assert second != url and client.get(url).status_code == 404
    assert client.delete("/api/profile/avatar", headers=auth_headers(user)).get_json()["avatar_url"] is None
    assert client.get(second).status_code == 404


def test_banner_is_three_to_one(client, make_user, auth_headers):
    user = make_user()
    body = _put(client, auth_headers, user, "banner", _png(1800, 900)).get_json()
    served = client.get(body["banner_url"])
    assert Image.open(io.BytesIO(served.data)).size == (1500, 500)


def test_png_renamed_jpg_is_read_by_content(client, make_user, auth_headers):
    user = make_user()
    resp = _put(client, auth_headers, user, "avatar", _png(600, 600), name="photo.jpg", content_type="image/jpeg")
    assert resp.status_code == 200


def test_svg_and_other_types_are_415(client, make_user, auth_headers):
    user = make_user()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="600"><script>alert(1)</script></svg>'
    for data, name in ((svg, "a.svg"), (svg, "a.png"), (b"GIF89a" + b"\0" * 100, "a.gif"), (b"hello", "a.webp")):
        resp = _put(client, auth_headers, user, "avatar", data, name=name)
        assert resp.status_code == 415 and resp.get_json()["error"]["code"] == "unsupported_media", name


def test_a_truncated_png_is_415(client, make_user, auth_headers):
    user = make_user()
    data = _png(600, 600)
    assert _put(client, auth_headers, user, "avatar", data[: len(data) // 2]).status_code == 415


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header for a huge grey image with a tiny compressed body."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * (width + 1) * 64, 9)  # only a few rows: decoding would still allocate all
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_a_40_megapixel_decompression_bomb_is_refused_before_decoding(client, make_user, auth_headers):
    user = make_user()
    data = _bomb_png(8000, 5000)
    assert len(data) < 200_000
    resp = _put(client, auth_headers, user, "avatar", data)
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "image_too_large"


def test_a_polyglot_keeps_only_its_pixels(client, make_user, auth_headers):
    user = make_user()
    payload = b"<html><script>alert('polyglot')</script></html>PK\x03\x04zip-part"
    resp = _put(client, auth_headers, user, "avatar", _png(600, 600) + payload)
    assert resp.status_code == 200
    served = client.get(resp.get_json()["avatar_url"]).data
    assert b"polyglot" not in served and b"<script" not in served and b"PK\x03\x04" not in served


def test_jpeg_gps_exif_is_stripped(client, make_user, auth_headers):
    user = make_user()
    data = _jpeg_with_gps(800, 600)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the upload carries GPS
    resp = _put(client, auth_headers, user, "avatar", data, name="me.jpg", content_type="image/jpeg")
    assert resp.status_code == 200
    served = client.get(resp.get_json()["avatar_url"]).data
    image = Image.open(io.BytesIO(served))
    assert not image.getexif() and "exif" not in image.info and "xmp" not in image.info
    assert b"SecretCam" not in served and b"GPS" not in served


def test_too_small_and_too_large_uploads(client, make_user, auth_headers):
    user = make_user()
    small = _put(client, auth_headers, user, "avatar", _png(511, 511))
    assert small.status_code == 400 and small.get_json()["error"]["code"] == "image_too_small"
    noise = Image.frombytes("RGB", (1100, 1100), bytes((i * 7919) % 251 for i in range(1100 * 1100 * 3)))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=0)
    assert len(buffer.getvalue()) > 2 * 1024 * 1024
    big = _put(client, auth_headers, user, "avatar", buffer.getvalue())
    assert big.status_code == 413
    assert client.put("/api/profile/avatar", json={"file": "x"}, headers=auth_headers(user)).status_code == 415
    # A body beyond the upload's envelope is refused before it is read, naming the file's limit (not 64 KiB).
    huge = _put(client, auth_headers, user, "avatar", b"\x89PNG" + bytes(3 * 1024 * 1024))
    assert huge.status_code == 413
    assert huge.get_json()["error"]["message"] == "The file is larger than 2 MiB; choose a smaller one."


def test_a_too_large_picture_from_the_profile_page_comes_back_to_it_with_the_reason(client, make_user, login_as):
    user = make_user()
    login_as(user)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/settings/profile").get_data(as_text=True))
    resp = client.post("/settings/profile/avatar", data={"csrf_token": token.group(1),
                       "file": (io.BytesIO(b"\x89PNG" + bytes(3 * 1024 * 1024)), "big.png", "image/png")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302 and resp.headers["Location"] == "/settings/profile"
    page = client.get("/settings/profile").get_data(as_text=True)
    assert "The file is larger than 2 MiB; choose a smaller one." in page


# ---- search ------------------------------------------------------------------------------


def test_search_by_name_and_address_prefix_public_profiles_only(client, make_user, auth_headers):
    alice = make_user("bc1qalicesearch01", display_name="Alice Hashes")
    hidden = make_user("bc1qhiddensearch1", display_name="Alice Hidden")
    accounts.update_settings(hidden, preferences.SettingsPatch.model_validate({"privacy": {"publicProfile": False}}))
    secret_name = make_user("bc1qsecretname01", display_name="Alice Secret")
    _patch(client, auth_headers, secret_name, {"visibility": {"display_name": "private"}})
    found = client.get("/api/miners/search?q=alice").get_json()["miners"]
    assert [m["user_id"] for m in found] == [alice.user_id]
    assert found[0] == {"user_id": alice.user_id, "display_name": "Alice Hashes", "avatar_url": None}
    # By address prefix: a hidden name is shown as the short address.
    by_id = client.get("/api/miners/search?q=bc1qsecret").get_json()["miners"]
    assert [(m["user_id"], m["display_name"]) for m in by_id] == [
        (secret_name.user_id, accounts.default_display_name(secret_name.user_id))]
    assert client.get("/api/miners/search?q=a").status_code == 400
    assert client.get("/api/miners/search?q=%25%25").get_json()["miners"] == []


def test_search_finds_confusable_spellings(client, make_user):
    make_user("bc1qcyrillic0001", display_name="\u0410ndrey")  # Cyrillic А
    assert [m["user_id"] for m in client.get("/api/miners/search?q=andrey").get_json()["miners"]] == [
        "bc1qcyrillic0001"]


# ---- blocks: a missing account on every route ----------------------------------------


def test_blocked_viewer_sees_a_missing_account_everywhere(client, make_user, auth_headers, auth):
    alice = make_user(display_name="Alice Blocker")
    bob = make_user(display_name="Bob Blocked")
    friends.block(alice, bob.user_id)
    headers = auth_headers(bob)
    for path in (f"/api/public/miners/{alice.user_id}", f"/api/public/miners/{alice.user_id}/stats",
                 f"/api/public/miners/{alice.user_id}/hashrate", f"/api/public/miners/{alice.user_id}/best-difficulty"):
        blocked = client.get(path, headers=headers)
        missing = client.get(path.replace(alice.user_id, "bc1qnosuchminer"), headers=headers)
        assert blocked.status_code == missing.status_code == 404
        assert blocked.get_data() == missing.get_data()
    auth.login(bob.user_id)  # pages: bob's browser session
    page = client.get(f"/miners/{alice.user_id}")
    missing_page = client.get("/miners/bc1qnosuchminer")
    assert page.status_code == missing_page.status_code == 404
    # The CSRF token is signed with the second it was made: the only part that may differ.
    def unsigned(html: str) -> str:
        return re.sub(r"[\w-]{20,}\.[\w-]{6}\.[\w-]{20,}", "TOKEN", html)

    assert unsigned(page.get_data(as_text=True)) == unsigned(missing_page.get_data(as_text=True))
    for path, body in (("/api/friends/requests", {"user_id": alice.user_id}), ("/api/blocks", {"user_id": alice.user_id})):
        blocked = client.post(path, json=body, headers=headers)
        missing = client.post(path, json={"user_id": "bc1qnosuchminer"}, headers=headers)
        assert blocked.status_code == missing.status_code == 404 and blocked.get_data() == missing.get_data()
    assert client.get("/api/miners/search?q=Alice Blocker", headers=headers).get_json()["miners"] == []
    assert client.get("/api/miners/search?q=Bob Blocked", headers=auth_headers(alice)).get_json()["miners"] == []
    # Anyone else still finds and sees alice.
    anonymous = client.application.test_client()
    assert anonymous.get(f"/api/public/miners/{alice.user_id}").status_code == 200
    assert len(anonymous.get("/api/miners/search?q=Alice Blocker").get_json()["miners"]) == 1


def test_removing_an_image_tries_every_size_when_one_delete_fails(app):
    from webapp.services import media

    with app.app_context():
        store = media.storage()
        base = "avatars/" + "ab" * 20
        store.put(f"{base}-128.webp", b"small", "image/webp")
        # A directory where the large size should be: unlink fails for real.
        big = store._path(f"{base}-512.webp")
        big.mkdir(parents=True, exist_ok=True)
        (big / "keep").write_bytes(b"x")
        with pytest.raises(OSError):
            media.remove("avatar", base)
        assert store.get(f"{base}-128.webp") is None
        (big / "keep").unlink()
        big.rmdir()
