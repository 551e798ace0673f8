"""The pages of friends and profiles: the nav's search box and request
badge, /friends and its forms, the profile page's friend buttons, the
profile editor's live preview (stranger and friend), export and delete."""
from __future__ import annotations

import re

from webapp.extensions import db
from webapp.models import User
from webapp.services import friends

from .builders import PASSWORD


def _csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_nav_has_search_and_live_badge_and_friends_page_forms(client, make_user, login_as):
    alice, bob = make_user(display_name="Alice Page"), make_user(display_name="Bob Page")
    friends.send_request(bob, alice.user_id, "hello there")
    login_as(alice)
    page = client.get("/friends").get_data(as_text=True)
    assert 'role="search"' in page and 'id="nav-search-q"' in page
    assert re.search(r'href="/friends" class="friends-link" aria-current="page"', page)
    messages_page = client.get("/messages").get_data(as_text=True)
    assert re.search(r'href="/messages" class="friends-link" aria-current="page"', messages_page)
    assert not re.search(r'href="/friends" class="friends-link" aria-current', messages_page)
    assert 'id="friend-requests-badge"' in page and 'data-count="1"' in page
    assert "Bob Page" in page and "hello there" in page
    request_id = int(re.search(r'data-request="(\d+)"', page).group(1))
    token = _csrf(page)
    resp = client.post(f"/friends/requests/{request_id}/accept", data={"csrf_token": token})
    assert resp.status_code == 302
    assert friends.relations.are_friends(alice.user_id, bob.user_id)
    page = client.get("/friends").get_data(as_text=True)
    assert 'data-count="0"' in page and "Your friends (1)" in page
    # The profile page shows the friendship and the buttons.
    profile = client.get(f"/miners/{bob.user_id}").get_data(as_text=True)
    assert 'id="friend-actions"' in profile and "Remove friend" in profile


def test_search_page_lists_public_profiles(client, make_user, login_as):
    make_user("bc1qsearchpage001", display_name="Findable Fred")
    me = make_user()
    login_as(me)
    page = client.get("/miners/search?q=findable").get_data(as_text=True)
    assert "Findable Fred" in page and 'href="/miners/bc1qsearchpage001"' in page
    assert "at least" not in page
    short = client.get("/miners/search?q=f").get_data(as_text=True)
    assert "q must be 2 to 100 characters." in short


def test_profile_editor_previews_what_a_stranger_and_a_friend_see(client, make_user, login_as):
    user = make_user(display_name="Editor Ed")
    headers = login_as(user, csrf_from="/settings/profile")
    page = client.get("/settings/profile").get_data(as_text=True)
    assert 'data-viewer="stranger"' in page and 'data-viewer="friend"' in page
    resp = client.post("/settings/profile", headers=headers, data={
        "display_name": "Editor Ed", "pronouns": "he/him", "location": "Lisbon", "bio": "Hello *world*",
        "country_code": "pt", "visibility.location": "public", "visibility.bio": "connections",
        "visibility.pronouns": "private"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    stranger, friend = html.split('data-viewer="friend"')
    assert "Lisbon" in stranger and "Lisbon" in friend
    assert "<em>world</em>" not in stranger and "<em>world</em>" in friend
    assert "he/him" not in html  # private: neither sees it
    bad = client.post("/settings/profile", headers=headers, data={"display_name": "x"})
    assert bad.status_code == 400 and "3 to 40" in bad.get_data(as_text=True)
    # The refusal goes under the form's Save button (out of band), in the page's words.
    # It names the refused control ...
    assert re.search(r'<p id="profile-form-error" class="error" role="alert" hx-swap-oob="true" '
                     r'data-field="display_name">Name must be 3 to 40 characters\.</p>', bad.get_data(as_text=True))
    level = client.post("/settings/profile", headers=headers, data={"visibility.bio": "everyone"})
    assert level.status_code == 400 and 'data-field="visibility.bio"' in level.get_data(as_text=True)
    # ... and a page render marks it itself, the others not.
    plain = {k: v for k, v in headers.items() if k.lower() != "hx-request"}
    full = client.post("/settings/profile", headers=plain, data={"display_name": "x"}).get_data(as_text=True)
    assert re.search(r'<input name="display_name"[^>]* aria-invalid="true" aria-describedby="profile-form-error">',
                     full)
    assert full.count("aria-invalid") == 1
    fine = client.post("/settings/profile", headers=headers, data={"display_name": "Editor Ed"})
    assert '<p id="profile-form-error" class="error" role="alert" hx-swap-oob="true" hidden></p>' in \
        fine.get_data(as_text=True)


def test_settings_export_and_delete_through_the_page(client, make_user, login_as):
    user = make_user()
    user_id = user.user_id
    login_as(user)
    settings = client.get("/settings").get_data(as_text=True)
    assert 'href="/settings/export"' in settings and 'action="/settings/delete"' in settings
    export = client.get("/settings/export")
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    assert export.get_json()["account"]["user_id"] == user_id
    token = _csrf(settings)
    wrong = client.post("/settings/delete", data={"csrf_token": token, "password": "wrong"})
    assert wrong.status_code == 302 and db.session.get(User, user_id) is not None
    gone = client.post("/settings/delete", data={"csrf_token": token, "password": PASSWORD})
    assert gone.status_code == 302 and gone.headers["Location"].endswith("/login")
    db.session.expire_all()
    assert db.session.get(User, user_id) is None


def test_messages_page_lists_conversations_with_unread_counts(client, make_user, login_as):
    from webapp.services import direct_messages, messages

    alice, bob = make_user(display_name="Alice Msg"), make_user(display_name="Bob Msg")
    row, _ = friends.send_request(alice, bob.user_id)
    friends.accept(bob, row.id)
    conversation, _ = direct_messages.start(alice, "direct", [bob.user_id])
    messages.post(alice.user_id, conversation["id"], "first")
    messages.post(alice.user_id, conversation["id"], "second")
    login_as(bob)
    page = client.get("/messages").get_data(as_text=True)
    assert f'data-conversation="{conversation["id"]}"' in page and "Alice Msg" in page
    assert 'aria-label="2 unread"' in page and "second" in page


def test_conversation_page_opens_from_a_profile_posts_without_script_and_turns_read_only(client, make_user,
                                                                                          login_as):
    from webapp.services import messages

    alice, bob, carol = (make_user(display_name=n) for n in ("Alice Conv", "Bob Conv", "Carol Conv"))
    row, _ = friends.send_request(alice, bob.user_id)
    friends.accept(bob, row.id)
    alice_id, bob_id, carol_id = alice.user_id, bob.user_id, carol.user_id
    login_as(alice)
    profile = client.get(f"/miners/{bob_id}").get_data(as_text=True)
    assert 'id="message-friend"' in profile
    token = _csrf(profile)
    # Message on the profile: the pair's conversation, the same one twice.
    first = client.post("/conversations/direct", data={"csrf_token": token, "user_id": bob_id})
    assert first.status_code == 302 and first.headers["Location"].startswith("/conversations/")
    again = client.post("/conversations/direct", data={"csrf_token": token, "user_id": bob_id})
    assert again.headers["Location"] == first.headers["Location"]
    cid = int(first.headers["Location"].rsplit("/", 1)[1])
    page = client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert f'data-conversation-id="{cid}"' in page and "Bob Conv" in page and 'id="chat-body"' in page
    assert 'id="chat-read-only" class="flash" role="status" hidden' in page
    # The composer without JavaScript.
    sent = client.post(f"/conversations/{cid}/send", data={"csrf_token": token, "body": "no script **here**"})
    assert sent.status_code == 302 and sent.headers["Location"] == f"/conversations/{cid}"
    assert "no script <strong>here</strong>" in client.get(f"/conversations/{cid}").get_data(as_text=True)
    # Not a friend: back with why.
    refused = client.post("/conversations/direct", data={"csrf_token": token, "user_id": carol_id,
                                                         "next": f"/miners/{carol_id}"}, follow_redirects=True)
    assert "not friends yet" in refused.get_data(as_text=True)
    # Bob blocks Alice: the page is read-only, with why instead of the composer.
    friends.block(db.session.get(User, bob_id), alice_id)
    page = client.get(f"/conversations/{cid}").get_data(as_text=True)
    assert "This conversation is read-only: you are no longer friends." in page
    assert 'id="chat-body" name="body"' in page and "disabled" in page.split('id="chat-body"')[1].split(">")[0]
    refused = client.post(f"/conversations/{cid}/send", data={"csrf_token": token, "body": "still there?"},
                          follow_redirects=True)
    assert "read-only" in refused.get_data(as_text=True)
    assert [m["body"] for m in messages.history(alice_id, cid, limit=10)[0]] == ["no script **here**"]
    # Someone outside it: 403; no such conversation: 404.
    login_as(carol)
    assert client.get(f"/conversations/{cid}").status_code == 403
    assert client.get("/conversations/99999999").status_code == 404


def _friends(a, b) -> None:
    row, _ = friends.send_request(a, b.user_id)
    friends.accept(b, row.id)


def _owner_with_friends(make_user, label: str):
    """An owner and three friends of theirs, "Pal/Foe/Other <label>"; → (owner, pal, foe, other)."""
    owner = make_user(display_name=f"Owner {label}")
    pals = [make_user(display_name=f"{role} {label}") for role in ("Pal", "Foe", "Other")]
    for friend in pals:
        _friends(owner, friend)
    return owner, *pals


def test_messages_page_starts_a_group_and_says_why_not(client, make_user, login_as):
    owner, pal, foe, other = _owner_with_friends(make_user, "Grp")
    _friends(pal, foe)
    friends.block(foe, pal.user_id)
    ids = {u.display_name: u.user_id for u in (pal, foe, other)}
    login_as(owner)
    page = client.get("/messages").get_data(as_text=True)
    assert 'id="new-group"' in page and page.count('name="user_ids"') == 3
    token = _csrf(page)
    refused = client.post("/conversations/group", data={"csrf_token": token, "title": "Quartet",
                                                        "user_ids": [ids["Pal Grp"], ids["Foe Grp"], ids["Other Grp"]]},
                          follow_redirects=True)
    html = refused.get_data(as_text=True)
    assert "cannot be in a group together" in html and "Leave one of each pair out." in html
    one = client.post("/conversations/group", data={"csrf_token": token, "title": "Duo", "user_ids": [ids["Pal Grp"]]},
                      follow_redirects=True)
    assert "A group has 3 to 10 members, you included." in one.get_data(as_text=True)
    made = client.post("/conversations/group", data={"csrf_token": token, "title": "Trio",
                                                     "user_ids": [ids["Pal Grp"], ids["Other Grp"]]})
    assert made.status_code == 302 and made.headers["Location"].startswith("/conversations/")
    group = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "Trio" in group and "Pal Grp" in group and "Other Grp" in group and 'id="chat-body"' in group


def test_the_groups_creator_adds_a_friend_from_its_page(client, make_user, login_as):
    from webapp.services import direct_messages

    owner, pal, foe, other = _owner_with_friends(make_user, "Add")
    group_id = direct_messages.start(owner, "group", [pal.user_id, other.user_id], "Trio")[0]["id"]
    _friends(pal, foe)
    friends.block(pal, foe.user_id)
    foe_id, other_id = foe.user_id, other.user_id
    login_as(other)
    assert 'id="group-add"' not in client.get(f"/conversations/{group_id}").get_data(as_text=True)  # not the creator
    login_as(owner)
    page = client.get(f"/conversations/{group_id}").get_data(as_text=True)
    assert 'id="group-add"' in page and f'<option value="{foe_id}">Foe Add</option>' in page
    assert f'<option value="{other_id}">' not in page  # already in it
    refused = client.post(f"/conversations/{group_id}/members", data={"csrf_token": _csrf(page), "user_id": foe_id},
                          follow_redirects=True).get_data(as_text=True)
    assert "cannot be in a group together" in refused and "Foe Add" in refused and "Pal Add" in refused
    assert 'id="group-add"' in refused
    friends.unblock(db.session.get(User, pal.user_id), foe_id)
    added = client.post(f"/conversations/{group_id}/members", data={"csrf_token": _csrf(page), "user_id": foe_id},
                        follow_redirects=True).get_data(as_text=True)
    assert "Added to the group." in added and f'data-user-id="{foe_id}"' in added
    assert 'id="group-add"' not in added  # every friend is in it now


def test_a_blocker_sees_the_blocked_members_group_messages_collapsed(client, make_user, login_as):
    from webapp.services import direct_messages, messages

    owner, pal, foe = (make_user(display_name=n) for n in ("Owner Hid", "Pal Hid", "Foe Hid"))
    for friend in (pal, foe):
        _friends(owner, friend)
    group_id = direct_messages.start(owner, "group", [pal.user_id, foe.user_id], "Trio")[0]["id"]
    messages.post(owner.user_id, group_id, "hello all")
    hidden = messages.post(pal.user_id, group_id, "secret words")[0]
    friends.block(foe, pal.user_id)
    login_as(foe)
    html = client.get(f"/conversations/{group_id}").get_data(as_text=True)
    item = html.split(f'id="msg-{hidden["id"]}"')[1].split("</li>")[0]
    assert item.lstrip().startswith('class="msg hidden-for-viewer"')
    assert "Message from a miner you blocked" in item
    # The words only behind the closed "Show" disclosure, with no actions.
    assert re.search(r'<details class="msg-hidden">\s*<summary><span class="when-closed">Show</span>', item)
    assert "secret words" in item.split('<details class="msg-hidden">')[1]
    assert "secret words" not in item.split('<details class="msg-hidden">')[0]
    assert 'data-action="reply"' not in item and "data-react" not in item
    assert f'data-seq="{hidden["seq"]}"' in html  # it keeps its place
    # Others' messages are as before; the owner sees Pal's in full.
    assert "hello all" in html and html.count("Message from a miner you blocked") == 1
    login_as(owner)
    assert "Message from a miner you blocked" not in client.get(f"/conversations/{group_id}").get_data(as_text=True)
    # /messages: the last message's words are not shown to the blocker.
    login_as(foe)
    listing = client.get("/messages").get_data(as_text=True)
    assert "secret words" not in listing and "Message from a miner you blocked" in listing
