"""The coop chat in two browser contexts under the app's CSP: two members
chat live — presence dots right from the start, the typing line, a message
sent with Enter and read out once, a reaction by keyboard that keeps the
focus, the read receipt, an inline edit by keyboard on a 360 px phone that
the other member sees live, a report by keyboard, a delete that keeps the
focus, a member leaving the page who stays online — and a message body, a
display name and a coop name that carry markup stay text in the page and in
the pushed fragments. Without JavaScript, only what works shows."""
from __future__ import annotations

import pytest

from webapp.extensions import db
from webapp.models import User
from webapp.services import conversations, coop_moderation, coops, messages

from ..builders import PASSWORD
from .conftest import assert_clean_console, goto_live, login, watch
from .test_mobile_a11y import axe_violations

pytestmark = pytest.mark.browser

XSS_NAME = '<img src=x onerror="window.__pwned=1">'


def wait_true(page, expression: str, timeout: float = 15) -> None:
    """Poll ``expression`` from here until it is true: the page's CSP
    forbids the eval behind ``wait_for_function``'s own polling."""
    for _ in range(int(timeout / 0.05)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"still false after {timeout} s: {expression}")


def test_two_members_chat_live(live_server, page, browser, make_user, screenshot):
    alice = make_user(display_name="Alice")
    bob = make_user(display_name=XSS_NAME)
    coop = coops.create(alice, name='<script>window.__pwned=2</script>Crew')
    coops.join(bob, invite_code=coop.invite_code)
    cid = conversations.coop_conversation_id(coop.id)
    messages.post(alice.user_id, cid, "welcome **aboard**")
    alice_id, bob_id = alice.user_id, bob.user_id
    db.session.remove()

    login(page, live_server.url, alice_id, PASSWORD)
    goto_live(page, f"{live_server.url}/coop/chat", timeout=15)
    bob_context = browser.new_context(viewport={"width": 360, "height": 740})
    bob_page = watch(bob_context.new_page())
    try:
        login(bob_page, live_server.url, bob_id, PASSWORD)
        goto_live(bob_page, f"{live_server.url}/coop/chat", timeout=15)
        bob_page.wait_for_selector("#chat-log li.msg >> text=welcome")
        assert bob_page.locator("#chat-log strong", has_text="aboard").count() == 1

        # Alice sees Bob online; Bob sees himself and Alice online (her socket
        # opened before his page: his socket's first frames carry the dots).
        page.wait_for_selector(f"#presence-{bob_id}.presence-online", timeout=15000)
        bob_page.wait_for_selector(f"#presence-{bob_id}.presence-online", timeout=15000)
        bob_page.wait_for_selector(f"#presence-{alice_id}.presence-online", timeout=15000)

        # Bob types: Alice sees the typing line with his name as text.
        bob_page.fill("#chat-body", "")
        bob_page.type("#chat-body", "gm <b>alice</b> <img src=x onerror=window.__pwned=3>")
        page.wait_for_selector("#chat-typing:has-text('is typing')", timeout=15000)
        assert XSS_NAME in page.locator("#chat-typing").inner_text()

        # Enter sends; Alice gets the message live, as text.
        bob_page.press("#chat-body", "Enter")
        page.wait_for_selector("#chat-log li.msg >> text=gm", timeout=15000)
        last = page.locator("#chat-log li.msg").last
        assert "<b>alice</b>" in last.inner_text() and last.locator("img, b").count() == 0
        # Read out once, author and words (not the message's buttons).
        assert page.locator("#chat-announcer").inner_text() == \
            f"{XSS_NAME}: gm <b>alice</b> <img src=x onerror=window.__pwned=3>"
        assert bob_page.input_value("#chat-body") == ""
        wait_true(page, "document.getElementById('chat-typing').textContent === ''")

        # A pushed message carries a working Report form too (its CSRF token
        # rendered by the socket): Alice reports Bob's, by mouse.
        last.locator("details.report-picker summary").click()
        last.locator("form.msg-report button").click()
        last.locator(".msg-report-status").wait_for(timeout=15000)
        assert last.locator(".msg-report-status").inner_text() == "Reported. The moderators will look at it."
        last.locator("details.report-picker summary").click()  # closed again

        # Escape closes the React picker, the focus back on its summary.
        last.locator("details.react-picker summary").focus()
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.react") == "👍"
        page.keyboard.press("Escape")
        assert not last.locator("details.react-picker").evaluate("d => d.open")
        assert page.evaluate("document.activeElement.matches('details.react-picker > summary')")
        # Alice reacts by keyboard; Bob sees the reaction, marked as not his.
        page.keyboard.press("Enter")
        for _ in range(6):  # 👍 😂 😮 😢 🎉 🔥
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.react") == "🔥"
        page.keyboard.press("Enter")
        bob_reaction = bob_page.locator("#chat-log li.msg").last.locator(".msg-reactions .reaction")
        bob_reaction.wait_for(timeout=15000)
        assert bob_reaction.inner_text().strip() == "🔥 1"
        assert bob_reaction.get_attribute("aria-pressed") == "false"
        # Alice's own copy came back re-rendered with her reaction: the focus
        # is on its React summary again, not lost to the page.
        last.locator(".msg-reactions .reaction.me").wait_for(timeout=15000)
        wait_true(page, "document.activeElement.matches('details.react-picker > summary')"
                  f" && document.activeElement.closest('li').id === '{last.get_attribute('id')}'")
        # A reaction is no new message: nothing more is read out to Bob.
        assert bob_page.locator("#chat-announcer").inner_text() == ""

        # Alice read Bob's message (her page is visible): Bob sees "Seen by Alice".
        bob_page.wait_for_selector("#chat-seen:has-text('Seen by Alice')", timeout=15000)

        screenshot(bob_page, "chat-mobile")

        # Bob edits his message inline, by keyboard, on his 360 px phone.
        mid = bob_page.locator("#chat-log li.msg.mine").last.get_attribute("data-id")
        bob_msg = f"#msg-{mid}"
        bob_page.locator(f"{bob_msg} [data-action=edit]").click()
        field = bob_page.locator(f"{bob_msg}.editing form.msg-edit textarea")
        field.wait_for(timeout=15000)
        assert bob_page.evaluate("document.activeElement.id") == f"msg-edit-{mid}"
        assert field.input_value().startswith("gm <b>alice</b>")
        label = bob_page.locator(f"label[for=msg-edit-{mid}]")
        assert label.inner_text() == "Edit your message"
        assert "Escape cancels" in bob_page.locator(f"#{field.get_attribute('aria-describedby')}").inner_text()
        assert bob_page.evaluate("document.documentElement.scrollWidth") <= 360
        assert axe_violations(bob_page) == []
        # Escape cancels: the message is back, the focus on its Edit button.
        bob_page.keyboard.press("Escape")
        bob_page.wait_for_selector(f"{bob_msg}:not(.editing) [data-action=edit]", timeout=15000)
        wait_true(bob_page, "document.activeElement.dataset.action === 'edit'"
                  f" && document.activeElement.closest('li').id === 'msg-{mid}'")
        # Enter opens it again (a button); Shift+Enter is a new line, Enter saves.
        bob_page.keyboard.press("Enter")
        field.wait_for(timeout=15000)
        field.fill("")
        bob_page.keyboard.type("gm edited")
        bob_page.keyboard.press("Shift+Enter")
        bob_page.keyboard.type("second line")
        assert field.input_value() == "gm edited\nsecond line"
        bob_page.keyboard.press("Enter")
        bob_page.wait_for_selector(f"{bob_msg}:not(.editing) .msg-body:has-text('second line')", timeout=15000)
        wait_true(bob_page, "document.activeElement.dataset.action === 'edit'"
                  f" && document.activeElement.closest('li').id === 'msg-{mid}'")
        # Alice sees the new text and "edited", live; the reaction stays.
        alice_msg = page.locator(bob_msg)
        page.wait_for_selector(f"{bob_msg} .msg-body:has-text('second line')", timeout=15000)
        assert "gm edited" in alice_msg.locator(".msg-body").inner_text()
        assert "(edited)" in alice_msg.locator(".msg-head").inner_text()
        assert alice_msg.locator(".msg-reactions .reaction").inner_text().strip() == "🔥 1"
        assert "(edited)" in bob_page.locator(f"{bob_msg} .msg-head").inner_text()
        # Each action is described by its message's author and time.
        reply = bob_page.locator(f"{bob_msg} [data-action=reply]")
        assert bob_page.locator(f"#{reply.get_attribute('aria-describedby')}").inner_text().startswith(XSS_NAME)

        # Bob reports Alice's message by keyboard on his phone; the outcome
        # takes the place of the form, and the focus.
        welcome = bob_page.locator("#chat-log li.msg", has_text="welcome")
        assert welcome.locator("details.report-picker").count() == 1
        assert bob_page.locator(f"{bob_msg} details.report-picker").count() == 0  # not his own
        welcome.locator("details.report-picker summary").focus()
        bob_page.keyboard.press("Enter")
        welcome.get_by_label("Why").select_option("abuse")
        welcome.get_by_label("Details (optional)").fill("rude")
        assert bob_page.evaluate("document.documentElement.scrollWidth") <= 360
        assert axe_violations(bob_page) == []
        welcome.get_by_role("button", name="Send report").focus()
        bob_page.keyboard.press("Enter")
        status = welcome.locator(".msg-report-status")
        status.wait_for(timeout=15000)
        assert status.inner_text() == "Reported. The moderators will look at it."
        # (htmx focuses [autofocus] once the swap has settled, ~20 ms later.)
        wait_true(bob_page, "document.activeElement.classList.contains('msg-report-status')")
        bob_page.keyboard.press("Escape")  # closes the disclosure, back on its summary
        assert bob_page.evaluate("document.activeElement.matches('details.report-picker > summary')")
        # A push re-renders the message (Alice reacts to it): it still says it was reported.
        messages.react(alice_id, int(welcome.get_attribute("data-id")), "🚀", on=True)
        welcome.locator(".msg-reactions .reaction", has_text="🚀").wait_for(timeout=15000)
        assert welcome.locator(".msg-reported").inner_text() == "Reported"
        assert welcome.locator("details.report-picker").count() == 0

        # The chat's skip link reaches the message box past every message's actions.
        bob_page.locator(".chat-main .skip-link").focus()
        assert bob_page.locator(".chat-main .skip-link").is_visible()
        bob_page.keyboard.press("Enter")
        wait_true(bob_page, "document.activeElement.id === 'chat-body'")

        # Reply, then Escape in the composer: the reply goes, the text stays.
        reply.click()
        assert bob_page.locator("#chat-replying").is_visible()
        bob_page.keyboard.type("draft")
        bob_page.keyboard.press("Escape")
        assert bob_page.locator("#chat-replying").is_hidden() and bob_page.input_value("#chat-body") == "draft"

        # Bob deletes his message by keyboard: the focus stays on it.
        bob_page.once("dialog", lambda dialog: dialog.accept())
        bob_page.locator(f"{bob_msg} [data-action=delete]").focus()
        bob_page.keyboard.press("Enter")
        bob_page.wait_for_selector(f"{bob_msg}.deleted", timeout=15000)
        wait_true(bob_page, f"document.activeElement.id === 'msg-{mid}'")
        for p in (page, bob_page):
            assert p.evaluate("window.__pwned === undefined")
            assert_clean_console(p)

        # Bob leaves the chat for the dashboard: still online to Alice (the
        # page going away is no "away"), once the dashboard's socket is open.
        bob_page.goto(f"{live_server.url}/coop")
        page.wait_for_selector(f"#presence-{bob_id}.presence-online", timeout=15000)
        page.wait_for_timeout(1000)
        assert page.locator(f"#presence-{bob_id}").get_attribute("class") == "presence presence-online"
    finally:
        bob_context.close()


def test_message_actions_sit_on_one_line(live_server, page, make_user):
    alice = make_user(display_name="Aligned Alice")
    coop = coops.create(alice, name="Aligned Crew")
    messages.post(alice.user_id, conversations.coop_conversation_id(coop.id), "one line of actions")
    alice_id = alice.user_id
    db.session.remove()
    login(page, live_server.url, alice_id, PASSWORD)
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        goto_live(page, f"{live_server.url}/coop/chat", timeout=15)
        # The middle of each control's word (not of its box): React's summary centres its word like the buttons.
        middles = page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll(
            '#chat-log li.msg .msg-actions > button, #chat-log li.msg .msg-actions > details > summary')).map((el) => {
              const range = document.createRange();
              range.selectNodeContents(el);
              const box = range.getBoundingClientRect();
              return [el.textContent.trim(), Math.round((box.top + box.bottom) / 2)];
            }))""")
        assert set(middles) == {"Reply", "React", "Edit", "Delete"}, middles
        assert max(middles.values()) - min(middles.values()) <= 1, f"at {width} px: {middles}"
    assert_clean_console(page)


def send_on_screen(page) -> bool:
    """Whether the composer's Send button is wholly inside the viewport."""
    box = page.locator("#chat-composer button[type=submit]").bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"]


def test_a_reply_posts_and_a_refused_message_comes_back_to_the_composer(live_server, page, make_user):
    """On a 360 px phone: Reply posts a reply (``reply_to`` a number, not the
    page's string id); a message the coop refuses (a blocked phrase) goes
    back into the empty composer with the refusal shown, and the refusal
    goes away once a message is posted; Send stays on screen."""
    alice = make_user(display_name="Replying Alice")
    coop = coops.create(alice, name="Reply Crew")
    cid = conversations.coop_conversation_id(coop.id)
    first, _ = messages.post(alice.user_id, cid, "the first message")
    gone, _ = messages.post(alice.user_id, cid, "soon deleted")
    messages.delete(alice.user_id, gone["id"])  # its tombstone is in the page axe checks below
    coop_moderation.update_settings(alice, coop_id=coop.id,
                                    keyword_filters=[{"phrase": "rug pull", "action": "block"}])
    alice_id, first_id = alice.user_id, first["id"]
    db.session.remove()

    page.set_viewport_size({"width": 360, "height": 740})
    login(page, live_server.url, alice_id, PASSWORD)
    goto_live(page, f"{live_server.url}/coop/chat", timeout=15)
    assert send_on_screen(page)

    page.locator(f"#msg-{first_id} [data-action=reply]").click()
    assert page.locator("#chat-replying").is_visible()
    page.fill("#chat-body", "a reply to it")
    page.press("#chat-body", "Enter")
    page.wait_for_selector("#chat-log li.msg.mine >> text=a reply to it", timeout=15000)
    reply = page.locator("#chat-log li.msg.mine").last
    assert reply.locator(f"a.msg-reply[href='#msg-{first_id}']").count() == 1
    # The label names whose message it answers, pushed and rendered alike.
    assert reply.locator("a.msg-reply").inner_text() == "↩ in reply to Replying Alice"
    assert page.locator("#chat-error").is_hidden()
    assert page.locator("#chat-replying").is_hidden()

    draft = "a long, careful message about a rug pull"
    page.fill("#chat-body", draft)
    page.press("#chat-body", "Enter")
    page.wait_for_selector("#chat-error:has-text('does not allow')", timeout=15000)
    assert page.input_value("#chat-body") == draft
    assert send_on_screen(page), "the refusal pushed Send off the screen"
    assert page.locator("#chat-log li.msg", has_text="careful message").count() == 0

    page.fill("#chat-body", "a fine message")
    page.press("#chat-body", "Enter")
    page.wait_for_selector("#chat-log li.msg.mine >> text=a fine message", timeout=15000)
    page.wait_for_selector("#chat-error", state="hidden", timeout=15000)
    assert page.input_value("#chat-body") == ""
    assert axe_violations(page) == []
    assert_clean_console(page)
    assert page.locator("#chat-log li.msg.deleted").count() == 1
    page.reload()
    reply = page.locator("#chat-log li.msg", has_text="a reply to it")
    assert reply.locator("a.msg-reply").inner_text() == "↩ in reply to Replying Alice"
    stored = {m["body"]: m["reply_to"] for m in messages.history(alice_id, cid, limit=10)[0] if m["body"]}
    assert stored == {"the first message": None, "a reply to it": first_id, "a fine message": None}


def test_a_mute_shows_on_the_open_chat_page_and_goes_when_it_ends(live_server, page, make_user):
    """The moderator's mute reaches the muted member's open page (the
    ``conversation`` push with ``muted_until``): the notice above the
    composer appears, and goes with the unmute; a reload while muted shows
    it too."""
    admin = make_user(display_name="Mod Maria")
    member = make_user(display_name="Chatty Carl")
    coop = coops.create(admin, name="Muted Crew")
    coops.join(member, invite_code=coop.invite_code)
    coop_id, member_id, admin_id = coop.id, member.user_id, admin.user_id
    db.session.remove()

    page.set_viewport_size({"width": 360, "height": 740})
    login(page, live_server.url, member_id, PASSWORD)
    goto_live(page, f"{live_server.url}/coop/chat", timeout=15)
    assert page.locator("#chat-muted").count() == 0
    coop_moderation.mute(db.session.get(User, admin_id), coop_id=coop_id, user_id=member_id, minutes=10)
    db.session.remove()
    notice = page.locator("#chat-muted")
    notice.wait_for(timeout=15000)
    assert notice.inner_text().startswith("A moderator muted you until ")
    assert send_on_screen(page), "the notice pushed Send off the screen"
    assert notice.get_attribute("role") == "status"
    goto_live(page, f"{live_server.url}/coop/chat", timeout=15)
    assert "muted you until" in page.locator("#chat-muted").inner_text()
    coop_moderation.unmute(db.session.get(User, admin_id), coop_id=coop_id, user_id=member_id)
    db.session.remove()
    page.wait_for_selector("#chat-muted", state="detached", timeout=15000)
    assert_clean_console(page)


def test_without_javascript_the_chat_shows_only_what_works(live_server, browser, make_user):
    """No JavaScript: Reply, React, Edit and Delete would do nothing and are
    hidden; sending and reporting are plain forms that work, the report's
    outcome flashed on the chat page."""
    alice = make_user(display_name="Plain Alice")
    bob = make_user(display_name="Plain Bob")
    coop = coops.create(alice, name="Plain Crew")
    coops.join(bob, invite_code=coop.invite_code)
    cid = conversations.coop_conversation_id(coop.id)
    hello, _ = messages.post(alice.user_id, cid, "hello without scripts")
    bob_id = bob.user_id
    db.session.remove()

    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        login(page, live_server.url, bob_id, PASSWORD)
        page.goto(f"{live_server.url}/coop/chat")
        item = page.locator(f"#msg-{hello['id']}")
        assert item.locator("[data-action=reply]").is_hidden()
        assert item.locator("details.react-picker").is_hidden()
        page.fill("#chat-body", "sent by a plain form")
        page.click("#chat-composer button[type=submit]")
        page.wait_for_selector("#chat-log li.msg.mine >> text=sent by a plain form")
        mine = page.locator("#chat-log li.msg.mine").last
        assert mine.locator("[data-action=edit]").is_hidden() and mine.locator("[data-action=delete]").is_hidden()

        item = page.locator(f"#msg-{hello['id']}")
        item.locator("details.report-picker summary").click()
        item.get_by_label("Why").select_option("spam")
        item.get_by_role("button", name="Send report").click()
        page.wait_for_selector("text=Reported. The moderators will look at it.")
        assert page.url == f"{live_server.url}/coop/chat"
    finally:
        context.close()
