"""Friends, direct messages and profiles in Debian's headless chromium under
the app's CSP, on a phone (390 px wide), two miners in two browser contexts:

- a friend request found through the nav's search box and sent with a
  message from the profile page: the recipient's nav badge counts it live,
  they accept on /friends, and the requester hears it live (the bell);
- a direct conversation opened from a friend's profile and from /messages:
  messages both ways arrive live, /messages shows the reader's unread count
  until they read it;
- /messages live: a message in any of the miner's conversations updates
  its row (last message, time, unread badge) and moves it to the top, a read
  in another tab lowers the badge, a new conversation appears, each new
  message is read out once, the keyboard focus stays put; an unfriend and a
  new friendship take the composer away and bring it back on an open page;
- a block mid-conversation: both open pages turn read-only live, nothing the
  blocker sends any more reaches the other, to whom the blocker's profile is
  the page of a missing account;
- the profile editor: the previews of a stranger and of a friend follow the
  fields and their levels as they change, the changes persist, the form
  works from the keyboard alone, and a refused save shows its refusal under
  Save and marks the control it names (until a save is accepted);
- axe-core finds no serious violation on /friends, /messages, a direct
  conversation and the profile editor, and markup in a display name, a bio,
  a request message and a message stays text there.
"""
from __future__ import annotations

import json
import time

import pytest

from webapp.extensions import db
from webapp.models import User
from webapp.services import direct_messages, friends, messages, profile_edit
from webapp.vocabulary import ConversationKind

from ..builders import PASSWORD
from .conftest import assert_clean_console, goto_live, login, wait_socket, watch
from .test_mobile_a11y import axe_violations

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
XSS_NAME = '<img src=x onerror="window.__pwned=1">'
XSS_BIO = '<script>window.__pwned=2</script><img src=x onerror="window.__pwned=3"> **bold** bio'
LIVE = 15000  # ms to wait for a push (the machine may be busy)


@pytest.fixture
def phones(browser):
    """``open_phone()`` → a watched page in a fresh 390 px context."""
    contexts = []

    def open_phone():
        context = browser.new_context(viewport=PHONE)
        contexts.append(context)
        return watch(context.new_page())

    yield open_phone
    for context in contexts:
        context.close()


def befriend(a, b) -> None:
    request, _ = friends.send_request(a, b.user_id)
    friends.accept(b, request.id)


def signed_in(phones, live_server, *user_ids: str) -> list:
    """A phone per user, each logged in; the test's session is closed first
    (the pages write through their own)."""
    db.session.remove()
    pages = [phones() for _ in user_ids]
    for page, user_id in zip(pages, user_ids, strict=True):
        login(page, live_server.url, user_id, PASSWORD)
    return pages


def open_menu(page) -> None:
    """The phone's menu (the nav, the search box, Friends, Messages)."""
    button = page.locator(".menu-button")
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    page.wait_for_selector("#nav-search-q", state="visible")


def click_and_wait_socket(page, selector: str) -> None:
    """Click what navigates, then wait for the new page's live socket."""
    opened = len(page.sockets)
    with page.expect_navigation():
        page.click(selector)
    wait_socket(page, opened, timeout=15)


def badge_count(page, selector: str) -> str:
    return page.locator(selector).get_attribute("data-count")


def conversation_rows(page) -> dict[str, dict[str, str]]:
    """/messages as ``{title: {"kind", "unread", "last"}}``."""
    rows = {}
    for li in page.locator("#conversations > li").all():
        badge = li.locator(".unread-count")
        rows[li.locator("strong").first.inner_text().strip()] = {
            "kind": li.locator(".pill").inner_text().strip(),
            "unread": badge.inner_text().strip() if badge.count() else "",
            "last": " ".join(li.locator(".request-message").inner_text().split()) if li.locator(".request-message").count() else "",
        }
    return rows


def log_texts(page) -> list[str]:
    return [" ".join(t.split()) for t in page.locator("#chat-log li.msg .msg-body").all_inner_texts()]


def send(page, text: str) -> None:
    page.fill("#chat-body", text)
    page.press("#chat-body", "Enter")


def wait_message(page, text: str) -> None:
    page.wait_for_selector(f"#chat-log li.msg .msg-body >> text={text}", timeout=LIVE)


# ---- a. a friend request, found with the search box ---------------------------------------------


def test_request_from_search_and_profile_reaches_the_badge_live_and_is_accepted(live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    bob = make_user(display_name="Bobby Blockfinder")
    alice_id, bob_id = alice.user_id, bob.user_id
    a, b = signed_in(phones, live_server, alice_id, bob_id)
    goto_live(b, f"{live_server.url}/messages", timeout=15)
    goto_live(a, f"{live_server.url}/", timeout=15)
    assert badge_count(b, "#friend-requests-badge") == "0"
    bell = int(badge_count(a, "#notification-badge"))

    # Alice finds Bob with the nav's search box (behind the phone's menu).
    open_menu(a)
    a.fill("#nav-search-q", "blockfinder")
    with a.expect_navigation():
        a.press("#nav-search-q", "Enter")
    results = a.locator("#search-results li.person a")
    assert results.all_inner_texts() == ["Bobby Blockfinder"]
    with a.expect_navigation():
        results.first.click()
    assert a.url == f"{live_server.url}/miners/{bob_id}"
    assert a.locator("h1.profile-name").inner_text() == "Bobby Blockfinder"

    # She asks, with a message; the profile now says so.
    a.fill("#friend-message", "gm, saw you on the leaderboard")
    with a.expect_navigation():
        a.click("#friend-actions button:has-text('Add friend')")
    assert a.locator("div.flash[role=status]").first.inner_text() == "Friend request sent."
    assert a.locator("#friend-actions").inner_text().startswith("Friend request sent")

    # Bob's open page counts it without a reload.
    b.wait_for_selector("#friend-requests-badge[data-count='1']", state="attached", timeout=LIVE)
    assert b.locator("#friend-requests-badge").inner_text() == "1"
    assert b.locator("#friend-requests-badge").get_attribute("aria-label") == "1 friend requests"

    # He opens Friends from the menu and accepts.
    open_menu(b)
    click_and_wait_socket(b, ".userbox a.friends-link:has-text('Friends')")
    incoming = b.locator("#incoming-requests li.person")
    assert incoming.count() == 1
    assert incoming.locator(".person-main a").inner_text() == "Alice Hashwell"
    assert incoming.locator(".request-message").inner_text() == "“gm, saw you on the leaderboard”"
    click_and_wait_socket(b, "button[aria-label='Accept the request from Alice Hashwell']")
    assert b.locator("div.flash[role=status]").first.inner_text() == "You are now friends."
    assert b.locator("#friends-title").inner_text() == "Your friends (1)"
    assert b.locator("#friends-list .person-main a").all_inner_texts() == ["Alice Hashwell"]
    assert b.locator("#incoming-requests li.person").count() == 0
    assert badge_count(b, "#friend-requests-badge") == "0"

    # Alice's open profile page hears it live: the bell counts the acceptance.
    a.wait_for_selector(f"#notification-badge[data-count='{bell + 1}']", state="attached", timeout=LIVE)
    # Her next look at the profile shows the friendship and the Message button.
    a.reload()
    assert a.locator("#friend-actions").inner_text().split("\n")[0].strip() == "Friends"
    assert a.locator("#message-friend").is_visible()
    a.goto(f"{live_server.url}/friends")
    assert a.locator("#friends-list .person-main a").all_inner_texts() == ["Bobby Blockfinder"]
    assert a.locator("#outgoing-requests li.person").count() == 0
    for p in (a, b):
        assert_clean_console(p)


def test_an_open_friends_page_lists_a_new_request_live_and_keeps_the_focus_after_an_answer(
        live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    bob = make_user(display_name="Bobby Blockfinder")
    alice_id, bob_id = alice.user_id, bob.user_id
    (b,) = signed_in(phones, live_server, bob_id)
    goto_live(b, f"{live_server.url}/friends", timeout=15)
    assert b.locator("#incoming-requests li.person").count() == 0

    # Alice asks while Bob looks at /friends: his list shows it without a reload.
    friends.send_request(db.session.get(User, alice_id), bob_id, message="gm from the pool")
    db.session.remove()
    b.wait_for_selector("#incoming-requests li.person .person-main a:has-text('Alice Hashwell')", timeout=LIVE)
    assert b.locator("#incoming-requests .request-message").inner_text() == "“gm from the pool”"

    # He accepts from the keyboard: the page comes back with the focus on his friends list.
    b.focus("button[aria-label='Accept the request from Alice Hashwell']")
    opened = len(b.sockets)
    with b.expect_navigation():
        b.keyboard.press("Enter")
    wait_socket(b, opened, timeout=15)
    assert b.url.endswith("/friends#friends-list")
    assert b.evaluate("document.activeElement.id") == "friends-list"
    assert b.locator("#friends-list .person-main a").all_inner_texts() == ["Alice Hashwell"]
    b.keyboard.press("Tab")
    assert b.evaluate("document.activeElement.closest('#friends-list') !== null")
    assert_clean_console(b)


# ---- b. a direct conversation, live both ways -----------------------------------------------------


def test_direct_conversation_live_both_ways_with_unread_counts(live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    bob = make_user(display_name="Bobby Blockfinder")
    befriend(alice, bob)
    alice_id, bob_id = alice.user_id, bob.user_id
    a, b = signed_in(phones, live_server, alice_id, bob_id)

    # Alice opens the conversation from Bob's profile.
    a.goto(f"{live_server.url}/miners/{bob_id}")
    click_and_wait_socket(a, "#message-friend")
    assert a.url.startswith(f"{live_server.url}/conversations/")
    cid = int(a.url.rsplit("/", 1)[1])
    assert a.locator("#conversation-title").inner_text().startswith("Bobby Blockfinder")
    assert a.locator("#chat-log .chat-empty").inner_text() == "No messages yet. Say hello!"

    # Bob's /messages lists it (no message yet), and offers his friend.
    goto_live(b, f"{live_server.url}/messages", timeout=15)
    assert conversation_rows(b) == {"Alice Hashwell": {"kind": "direct", "unread": "", "last": ""}}
    assert b.locator("#write-to option").all_inner_texts() == ["Alice Hashwell"]

    # Two messages from Alice while Bob is elsewhere: his list counts them.
    send(a, "gm bob")
    wait_message(a, "gm bob")
    send(a, "found a **block** yet?")
    wait_message(a, "found a block yet?")
    assert a.input_value("#chat-body") == ""
    b.reload()
    assert conversation_rows(b)["Alice Hashwell"] == {"kind": "direct", "unread": "2",
                                                      "last": "Alice Hashwell: found a **block** yet?"}
    # ... and so does the JSON list.
    listed = json.loads(b.evaluate("() => fetch('/api/conversations').then((r) => r.text())"))
    assert [(c["id"], c["unread_count"]) for c in listed["conversations"]] == [(cid, 2)]

    # Bob opens it from /messages (the friend picker goes to the same conversation).
    click_and_wait_socket(b, "#write-to-friend button[type=submit]")
    assert b.url == f"{live_server.url}/conversations/{cid}"
    assert log_texts(b) == ["gm bob", "found a block yet?"]
    assert b.locator("#chat-log li.msg strong", has_text="block").count() == 1  # the Markdown subset
    assert b.locator("#unread-divider").count() == 1
    # He has read it: Alice sees "Seen by" without a reload.
    a.wait_for_selector("#chat-seen:has-text('Seen by Bobby Blockfinder')", timeout=LIVE)

    # Bob answers: Alice gets it live; then Alice again: Bob gets it live.
    send(b, "not yet, 42 TH/s and counting")
    wait_message(a, "not yet, 42 TH/s and counting")
    send(a, "good luck!")
    wait_message(b, "good luck!")
    assert log_texts(a) == log_texts(b) == ["gm bob", "found a block yet?", "not yet, 42 TH/s and counting", "good luck!"]
    mine = [li.get_attribute("class") for li in b.locator("#chat-log li.msg").all()]
    assert ["mine" in c for c in mine] == [False, False, True, False]

    # Both read everything on their open pages: no unread count is left.
    def unread_of(page) -> int:
        data = json.loads(page.evaluate(f"() => fetch('/api/conversations/{cid}').then((r) => r.text())"))
        return data["unread_count"]

    deadline = time.monotonic() + 10
    while (unread_of(a), unread_of(b)) != (0, 0) and time.monotonic() < deadline:
        a.wait_for_timeout(100)
    assert (unread_of(a), unread_of(b)) == (0, 0)
    b.goto(f"{live_server.url}/messages")
    assert conversation_rows(b)["Alice Hashwell"] == {"kind": "direct", "unread": "", "last": "Alice Hashwell: good luck!"}
    for p in (a, b):
        assert p.evaluate("window.__pwned === undefined")
        assert_clean_console(p)


# ---- b2. /messages, live -------------------------------------------------------------------------


def row_order(page) -> list[str]:
    return [li.get_attribute("data-conversation") for li in page.locator("#conversations > li").all()]


def wait_row(page, cid: int, unread: str, last: str | None = None) -> None:
    """Wait until the row of ``cid`` shows ``unread`` ("" for no badge) and,
    when given, ``last`` as its last message."""
    deadline = time.monotonic() + LIVE / 1000
    # Read in one evaluation: the live list may be swapped between two
    # locator calls (a badge counted, then gone before its text is read).
    read = """(cid) => {
      const row = document.getElementById(`conversation-${cid}`);
      if (!row) return null;
      const badge = row.querySelector(".unread-count"), last = row.querySelector(".request-message");
      return [badge ? badge.innerText.trim() : "", last ? last.innerText.split(/\\s+/).join(" ").trim() : ""];
    }"""
    while time.monotonic() < deadline:
        found = page.evaluate(read, cid)
        if found is not None:
            got, text = found
            if got == unread and (last is None or text == last):
                return
        page.wait_for_timeout(50)
    raise AssertionError(f"row {cid} never showed unread={unread!r} last={last!r}: {conversation_rows(page)}")


def test_the_messages_list_is_live_and_the_composer_comes_back_with_the_friendship(live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    bob = make_user(display_name="Bobby Blockfinder")
    carol = make_user(display_name="Carol Coinbase")
    befriend(alice, bob)
    befriend(carol, bob)
    befriend(alice, carol)
    direct, _ = direct_messages.start(alice, ConversationKind.DIRECT, [bob.user_id])
    cid = direct["id"]
    messages.post(alice.user_id, cid, "gm bob")
    messages.mark_read(bob.user_id, cid, 1)
    group, _ = direct_messages.start(alice, ConversationKind.GROUP, [bob.user_id, carol.user_id], "Hash club")
    gid = group["id"]
    messages.post(carol.user_id, gid, "welcome all")  # the group is the newest: first on the list
    alice_id, bob_id = alice.user_id, bob.user_id
    carol_row = db.session.get(User, carol.user_id)
    a, b = signed_in(phones, live_server, alice_id, bob_id)
    goto_live(b, f"{live_server.url}/messages", timeout=15)
    goto_live(a, f"{live_server.url}/conversations/{cid}", timeout=15)
    b.evaluate("() => { window.__sameMessagesPage = true; }")
    assert row_order(b) == [str(gid), str(cid)]
    assert conversation_rows(b)["Alice Hashwell"] == {"kind": "direct", "unread": "", "last": "Alice Hashwell: gm bob"}
    assert conversation_rows(b)["Hash club"]["unread"] == "1"
    # Bob's keyboard is on the direct conversation's link while the list changes.
    b.focus(f"[data-conversation-link='{cid}']")

    # Alice sends twice: Bob's row counts them, shows the newest and moves up.
    send(a, "found a **block** yet?")
    wait_row(b, cid, "1", "Alice Hashwell: found a **block** yet?")
    assert row_order(b) == [str(cid), str(gid)]
    send(a, "42 TH/s here")
    wait_row(b, cid, "2", "Alice Hashwell: 42 TH/s here")
    badge = b.locator(f"#conversation-{cid} .unread-count")
    assert badge.inner_text() == "2" and badge.get_attribute("aria-label") == "2 unread"
    assert b.locator(f"#conversation-{cid} .conversation-time time").count() == 1
    # Read out once per message, politely; the focus stayed on the same conversation.
    assert b.locator("#messages-announcer").get_attribute("aria-live") == "polite"
    assert b.locator("#messages-announcer").inner_text() == "New message from Alice Hashwell"
    assert b.evaluate("() => document.activeElement.dataset.conversationLink") == str(cid)

    # Bob reads it in a second tab: the first tab's badge goes, without a reload.
    b2 = watch(b.context.new_page())
    goto_live(b2, f"{live_server.url}/conversations/{cid}", timeout=15)
    wait_row(b, cid, "")
    assert conversation_rows(b)["Hash club"]["unread"] == "1"

    # Carol starts a direct conversation with Bob and writes: it appears on top.
    started, _ = direct_messages.start(carol_row, ConversationKind.DIRECT, [bob_id])
    db.session.remove()
    b.wait_for_selector(f"#conversation-{started['id']}", timeout=LIVE)
    messages.post(carol_row.user_id, started["id"], "hi bob, carol here")
    db.session.remove()
    wait_row(b, started["id"], "1", "Carol Coinbase: hi bob, carol here")
    assert row_order(b)[0] == str(started["id"])
    b.wait_for_function("() => document.getElementById('messages-announcer').textContent === "
                        "'New message from Carol Coinbase'", timeout=LIVE)
    assert b.evaluate("() => window.__sameMessagesPage") is True  # never reloaded
    assert axe_violations(b) == []

    # The friendship ends and comes back: Alice's open page loses and regains its composer.
    friends.unfriend(db.session.get(User, bob_id), alice_id)
    db.session.remove()
    a.wait_for_selector("#chat-read-only:not([hidden])", timeout=LIVE)
    assert a.locator("#chat-composer").is_hidden()
    befriend(db.session.get(User, bob_id), db.session.get(User, alice_id))
    db.session.remove()
    a.wait_for_selector("#chat-composer:not([hidden])", timeout=LIVE)
    assert a.locator("#chat-read-only").is_hidden() and a.locator("#chat-body").is_enabled()
    send(a, "friends again")
    wait_message(b2, "friends again")
    for p in (a, b, b2):
        assert p.evaluate("window.__pwned === undefined")
        assert_clean_console(p)


def test_a_blockers_group_page_shows_the_blocked_members_messages_on_demand(live_server, phones, make_user):
    owner = make_user(display_name="Olga Owner")
    pal = make_user(display_name="Pavel Pal")
    foe = make_user(display_name="Fiona Foe")
    befriend(owner, pal)
    befriend(owner, foe)
    group, _ = direct_messages.start(owner, ConversationKind.GROUP, [pal.user_id, foe.user_id], "Trio")
    gid = group["id"]
    messages.post(owner.user_id, gid, "hello all")
    hidden = messages.post(pal.user_id, gid, "words foe chose not to see")[0]
    friends.block(foe, pal.user_id)
    foe_id = foe.user_id
    db.session.remove()
    f = phones()
    login(f, live_server.url, foe_id, PASSWORD)
    goto_live(f, f"{live_server.url}/conversations/{gid}", timeout=15)
    item = f.locator(f"#msg-{hidden['id']}")
    assert " ".join(item.inner_text().split()) == \
        "Message from a miner you blocked Show the message from a miner you blocked"  # the summary's hidden words
    assert not item.locator(".msg-hidden .msg-body").is_visible()
    # From the keyboard: the "Show" disclosure opens with Enter.
    item.locator("summary").focus()
    f.keyboard.press("Enter")
    assert item.locator(".msg-hidden .msg-body").inner_text() == "words foe chose not to see"
    assert item.locator(".msg-hidden .msg-author").inner_text() == "Pavel Pal"
    assert item.locator("summary").inner_text().startswith("Hide")
    assert log_texts(f)[0] == "hello all"
    assert axe_violations(f) == []
    assert_clean_console(f)


# ---- c. a block mid-conversation -----------------------------------------------------------------


def test_a_block_mid_conversation_turns_it_read_only_live(live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    bob = make_user(display_name="Bobby Blockfinder")
    befriend(alice, bob)
    conversation, _ = direct_messages.start(alice, ConversationKind.DIRECT, [bob.user_id])
    cid = conversation["id"]
    messages.post(bob.user_id, cid, "hi alice")
    alice_id, bob_id = alice.user_id, bob.user_id
    a, b = signed_in(phones, live_server, alice_id, bob_id)
    goto_live(a, f"{live_server.url}/conversations/{cid}", timeout=15)
    goto_live(b, f"{live_server.url}/conversations/{cid}", timeout=15)
    assert a.locator("#chat-read-only").is_hidden() and a.locator("#chat-body").is_enabled()
    send(b, "one more before I go")
    wait_message(a, "one more before I go")

    # Bob blocks Alice from her profile, in a second tab of his.
    b2 = watch(b.context.new_page())
    b2.goto(f"{live_server.url}/miners/{alice_id}")
    with b2.expect_navigation():
        b2.click("#friend-actions button:has-text('Block')")
    assert b2.locator("div.flash[role=status]").first.inner_text() == "Blocked. They can no longer reach or find you."

    # Both open conversation pages turn read-only without a reload.
    for p in (a, b):
        p.wait_for_selector("#chat-read-only:not([hidden])", timeout=LIVE)
        assert p.locator("#chat-read-only").inner_text() == "This conversation is read-only: you are no longer friends."
        assert p.locator("#chat-composer").is_hidden()
        assert p.locator("#chat-body").is_disabled()
    # Nothing Bob sends reaches Alice any more: the route refuses it.
    refused = json.loads(b.evaluate("""(cid) => fetch(`/api/conversations/${cid}/messages`, {
        method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json',
                  'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
        body: JSON.stringify({body: 'are you still there?'})}).then(async (r) => JSON.stringify([r.status, await r.json()]))""", cid))
    assert refused[0] == 409 and refused[1]["error"]["code"] == "read_only"
    a.wait_for_timeout(1000)
    assert log_texts(a) == ["hi alice", "one more before I go"]
    # The history stays readable; a reload shows the same read-only page.
    a.reload()
    assert log_texts(a) == ["hi alice", "one more before I go"]
    assert a.locator("#chat-read-only").inner_text() == "This conversation is read-only: you are no longer friends."
    assert a.locator("#chat-composer").is_hidden()

    # To Alice, Bob's profile is the page of a missing account.
    blocked = a.goto(f"{live_server.url}/miners/{bob_id}")
    blocked_text = a.locator("#main").inner_text()
    missing = a.goto(f"{live_server.url}/miners/bc1qnosuchminer0000000000000000000000000")
    missing_text = a.locator("#main").inner_text()
    assert blocked.status == missing.status == 404
    assert blocked_text == missing_text and "Bobby" not in blocked_text
    # ... and the search box does not find him.
    a.goto(f"{live_server.url}/miners/search?q=blockfinder")
    assert a.locator("#search-results").inner_text().strip() == "No public profile matches “blockfinder”."
    for p in (a, b):
        assert_clean_console(p, allow=("404 (NOT FOUND)", "409 (CONFLICT)"))


# ---- d. the profile editor --------------------------------------------------------------------


def preview(page, who: str) -> dict[str, str]:
    """What the editor's preview shows ``who`` (stranger or friend)."""
    article = page.locator(f"#profile-preview article[data-viewer='{who}']")

    def text(selector: str) -> str:
        found = article.locator(selector)
        return " ".join(found.inner_text().split()) if found.count() else ""

    return {"name": text(".preview-name"), "pronouns": text(".profile-pronouns"),
            "location": text(".profile-location"), "bio": text(".profile-bio")}


def tab_to(page, name: str, limit: int = 80, key: str = "Tab") -> None:
    """Press Tab (or ``key``) until the form control ``name`` has the focus."""
    for _ in range(limit):
        if page.evaluate("() => document.activeElement && document.activeElement.name") == name:
            return
        page.keyboard.press(key)
    raise AssertionError(f"Tab never reached {name}")


def test_profile_editor_previews_follow_the_fields_and_work_from_the_keyboard(live_server, phones, make_user):
    edith = make_user(display_name="Edith Editor")
    profile_edit.update(edith, {"pronouns": "she/her", "location": "Porto", "bio": "Mining since 2011",
                                "visibility": {"pronouns": "public", "location": "connections", "bio": "connections"}})
    edith_id = edith.user_id
    db.session.remove()
    page = phones()
    login(page, live_server.url, edith_id, PASSWORD)
    page.goto(f"{live_server.url}/settings/profile")
    assert preview(page, "stranger") == {"name": "Edith Editor", "pronouns": "she/her", "location": "", "bio": ""}
    assert preview(page, "friend") == {"name": "Edith Editor", "pronouns": "she/her", "location": "Porto",
                                       "bio": "Mining since 2011"}

    def saved() -> None:
        page.wait_for_load_state("networkidle")

    # Keyboard only, from the top of the page: Tab to the name, retype it.
    page.locator("body").focus()
    tab_to(page, "display_name")
    page.keyboard.press("Control+a")
    page.keyboard.type("Edith Keys")
    # Tab on to the bio (the change saves and the previews follow).
    tab_to(page, "bio", limit=12)
    page.wait_for_function("""() => document.querySelector("#profile-preview [data-viewer=stranger] .preview-name")
                               .textContent === 'Edith Keys'""", timeout=LIVE)
    page.keyboard.press("Control+a")
    page.keyboard.type("Solo since **2011**")
    # The bio's level: from Friends to Everyone, by typing in the closed select.
    tab_to(page, "visibility.bio", limit=3)
    page.keyboard.type("E")
    assert page.input_value("select[name='visibility.bio']") == "public"
    page.wait_for_function("""() => {
        const bio = document.querySelector("#profile-preview [data-viewer=stranger] .profile-bio");
        return bio && bio.textContent.includes('Solo since');
      }""", timeout=LIVE)
    assert preview(page, "stranger") == {"name": "Edith Keys", "pronouns": "she/her", "location": "",
                                         "bio": "Solo since 2011"}
    assert page.locator("#profile-preview [data-viewer=stranger] .profile-bio strong").inner_text() == "2011"
    assert preview(page, "friend")["bio"] == "Solo since 2011"

    # The pronouns to Only me, then Enter in the location submits the form.
    tab_to(page, "visibility.pronouns", limit=8, key="Shift+Tab")
    page.keyboard.type("O")
    assert page.input_value("select[name='visibility.pronouns']") == "private"
    tab_to(page, "location", limit=3)
    page.keyboard.press("Control+a")
    page.keyboard.type("Lisbon")
    before = page.url
    page.keyboard.press("Enter")
    page.wait_for_function("""() => {
        const loc = document.querySelector("#profile-preview [data-viewer=friend] .profile-location");
        return loc && loc.textContent === 'Lisbon';
      }""", timeout=LIVE)
    saved()
    assert page.url == before  # htmx saved it in place
    assert preview(page, "stranger") == {"name": "Edith Keys", "pronouns": "", "location": "", "bio": "Solo since 2011"}
    assert preview(page, "friend") == {"name": "Edith Keys", "pronouns": "", "location": "Lisbon",
                                       "bio": "Solo since 2011"}

    # Saved: a reload shows the stored values, and a stranger sees the profile so.
    page.reload()
    assert page.input_value("input[name=display_name]") == "Edith Keys"
    assert page.input_value("textarea[name=bio]") == "Solo since **2011**"
    assert page.input_value("input[name=location]") == "Lisbon"
    assert page.input_value("select[name='visibility.bio']") == "public"
    assert page.input_value("select[name='visibility.pronouns']") == "private"
    stranger = phones()
    stranger.goto(f"{live_server.url}/miners/{edith_id}")
    assert stranger.locator("h1.profile-name").inner_text() == "Edith Keys"
    assert " ".join(stranger.locator(".profile-bio").inner_text().split()) == "Solo since 2011"
    assert stranger.locator(".profile-pronouns").count() == 0 and stranger.locator(".profile-location").count() == 0

    # A refused save: the refusal shows under Save, and the control it names is marked.
    page.locator("input[name=country_code]").focus()
    page.keyboard.type("ZZ")
    page.keyboard.press("Tab")
    page.wait_for_function("""() => document.querySelector('#profile-form-error').textContent
                               .startsWith('Country must be an ISO 3166-1 alpha-2')""", timeout=LIVE)
    country = page.locator("input[name=country_code]")
    assert page.locator("#profile-form-error").is_visible()
    assert country.get_attribute("aria-invalid") == "true"
    assert country.get_attribute("aria-describedby") == "profile-form-error"
    assert page.locator("[aria-invalid]").count() == 1
    # Mended: the refusal goes, and so does the mark.
    country.fill("PT")
    page.keyboard.press("Tab")
    page.wait_for_function("() => document.querySelector('#profile-form-error').hidden", timeout=LIVE)
    assert country.get_attribute("aria-invalid") is None and country.get_attribute("aria-describedby") is None
    page.reload()
    assert page.input_value("input[name=country_code]") == "PT"
    assert_clean_console(page, allow=("400 (BAD REQUEST)",))  # the refused save


# ---- e. axe-core, and markup that stays text --------------------------------------------------------


def test_friends_messages_conversation_and_editor_pass_axe_and_keep_markup_as_text(live_server, phones, make_user):
    alice = make_user(display_name="Alice Hashwell")
    mallory = make_user(display_name=XSS_NAME)
    profile_edit.update(mallory, {"bio": XSS_BIO, "visibility": {"bio": "public"}})
    befriend(alice, mallory)
    asker = make_user(display_name='<script>window.__pwned=4</script>Asker')
    friends.send_request(asker, alice.user_id, '<img src=x onerror="window.__pwned=5">hi')
    conversation, _ = direct_messages.start(alice, ConversationKind.DIRECT, [mallory.user_id])
    cid = conversation["id"]
    messages.post(mallory.user_id, cid, '<img src=x onerror="window.__pwned=6"> **gm**')
    carol = make_user(display_name="Carol Calm")
    befriend(alice, carol)
    group, _ = direct_messages.start(alice, ConversationKind.GROUP, [mallory.user_id, carol.user_id],
                                     '<b onmouseover="window.__pwned=8">Crew</b>')
    alice_id, mallory_id, carol_id = alice.user_id, mallory.user_id, carol.user_id
    db.session.remove()
    page, mal = phones(), phones()
    login(page, live_server.url, alice_id, PASSWORD)
    login(mal, live_server.url, mallory_id, PASSWORD)

    problems = []
    for p, path, shows in (
        (page, "/friends", XSS_NAME),
        (page, "/messages", XSS_NAME),
        (page, f"/conversations/{cid}", '<img src=x onerror="window.__pwned=6"> gm'),
        (page, f"/miners/{mallory_id}", "<script>window.__pwned=2</script>"),
        (mal, "/settings/profile", "<script>window.__pwned=2</script>"),
        (page, f"/conversations/{group['id']}", '<b onmouseover="window.__pwned=8">Crew</b>'),
    ):
        goto_live(p, f"{live_server.url}{path}", timeout=15)
        if path == "/messages":  # the group form open too
            p.locator("#new-group summary").click()
            assert [t.strip() for t in p.locator("#new-group label.check").all_inner_texts()] == sorted(
                ["Carol Calm", XSS_NAME], key=lambda n: {"Carol Calm": carol_id, XSS_NAME: mallory_id}[n])
        assert shows in p.locator("#main").inner_text(), path
        assert p.locator("#main img[src=x], #main script:not([src]), #main b[onmouseover]").count() == 0, path
        problems += [f"{path}: {v}" for v in axe_violations(p)]
    assert problems == [], "\n".join(problems)
    # The request's message and the asker's name are text too.
    page.goto(f"{live_server.url}/friends")
    assert page.locator("#incoming-requests .request-message").inner_text() == '“<img src=x onerror="window.__pwned=5">hi”'
    assert "<script>window.__pwned=4</script>Asker" in page.locator("#incoming-requests").inner_text()
    # A message pushed live with markup in it stays text as well.
    goto_live(page, f"{live_server.url}/conversations/{cid}", timeout=15)
    goto_live(mal, f"{live_server.url}/conversations/{cid}", timeout=15)
    send(mal, '<svg onload="window.__pwned=7"></svg>live')
    wait_message(page, "live")
    assert page.locator("#chat-log li.msg").last.locator("svg, img").count() == 0
    assert page.locator("#chat-log li.msg").last.locator(".msg-author").inner_text() == XSS_NAME
    for p in (page, mal):
        assert p.evaluate("window.__pwned === undefined")
        assert_clean_console(p)
