"""Every page on a phone and on a desktop, in Debian's headless chromium
under the app's CSP, over a slice of the demo day:

- every GET page route of the ``pages_*`` blueprints is visited by the
  visitors who see it (logged out, a miner outside any coop, a coop member,
  the coop's admin, a platform admin); a page route that no visit covers
  fails ``test_every_page_route_is_visited`` (add it to ``VISITS``, or to
  ``NOT_PAGES`` when it only answers htmx or serves a file);
- at 360, 390, 768, 1024 and 1280 px no page scrolls sideways
  (``document.documentElement.scrollWidth`` ≤ the viewport); at 1024 and
  1280 px the top bar is one line (every item of it on the brand's line); at 390 px
  the bell, the menu button, every menu link and every button, ``.button``
  and filter chip on the page is at least 44 × 44 px and is what a tap at
  its centre hits (``elementFromPoint``), and so is a link that is a table
  cell's or a listed person's or conversation's target;
- axe-core (tests/browser/vendor, never served) finds no critical or serious
  violation at 390 and at 1280 px;
- the screenshots of docs/SCREENSHOTS.md are taken at both widths
  (``<page>-390.png``, ``<page>-1280.png``).

Then the keyboard and screen-reader behaviour: the skip link, the menu
button (aria-expanded, Escape), the desktop account menu (aria-expanded,
Escape, Tab out, outside click), the bell panel (Escape, outside click, an
item opens), focus after Mark read and Delete, and the aria-live region
that reads out a pushed notification.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import Cooperative, User
from webapp.services import admin as admin_service
from webapp.services import broadcasts, coops, direct_messages, friends, messages, notifications, relations
from webapp.services import demo as demo_service
from webapp.services import email as email_service
from webapp.vocabulary import ConversationKind

from ..builders import PASSWORD
from .conftest import SCREENSHOTS, assert_clean_console, goto_live, login, watch

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
TABLETS = ({"width": 768, "height": 1024}, {"width": 1024, "height": 768})  # either side of the breakpoints
DESKTOP = {"width": 1280, "height": 800}
TAP = 44  # px, the smallest touch target (WCAG 2.5.5, Apple and Material guidelines)

# GET routes of the pages blueprints that are not pages: htmx fragments, files.
NOT_PAGES = {"pages_activity.page", "pages_activity.new", "pages_coops.members", "pages_broadcast.status",
             "pages_moderation.audit", "pages_moderation.panel", "pages_moderation.counts", "pages_coops.live", "pages_home.progress", "pages_settings.service_worker",
             "pages_media.media_file", "pages_chat.older", "pages_discovery.coop_timeline", "pages_your_data.export",
             "pages_discovery.coop_leaderboard", "pages_chat.message", "pages_chat.edit_form",
             "pages_friends.conversation_older", "pages_friends.messages_live"}


@dataclass
class Visit:
    """One page as one visitor sees it: ``path`` may hold {placeholders}
    filled from the world; ``shot`` names its screenshots; ``ready`` is a
    selector to wait for; ``status`` the expected HTTP status."""

    path: str
    shot: str | None = None
    ready: str | None = None
    status: int = 200
    allow_console: tuple[str, ...] = field(default_factory=tuple)


# Who sees what. Keys are visitors of the world built by ``world`` below.
VISITS: dict[str, list[Visit]] = {
    "anonymous": [
        Visit("/login", "login", "input[name=user_id]"),
        Visit("/register", "register", "input[name=password]"),
        Visit("/unsubscribe/{unsubscribe_token}"),
        Visit("/coop/join/{invite_code}"),  # the invite's preview for a visitor
        Visit("/settings/email/confirm/not-a-token"),  # refused, back to the log-in page with a message
    ],
    "newcomer": [  # a miner in no coop
        Visit("/"),
        Visit("/coop"),
        Visit("/coop/join/{invite_code}", "coop-join", "#coop-join-preview button[type=submit]"),
        Visit("/settings", "settings", "#privacy"),
        Visit("/friends"),
        Visit("/miners/search?q=sat"),
        Visit("/coops", "coop-directory", "#main h1"),
        Visit("/leaderboard", "leaderboard", "#main h1"),
        Visit("/messages"),
        Visit("/settings/profile"),
    ],
    "member": [  # a member of Satoshi's coop
        Visit("/miners/{member}", "profile-other", "#miner-stats"),
        Visit("/coop"),
        Visit("/activity"),
        Visit("/coop/chat", "coop-chat", "#main h1"),
        Visit("/conversations/{direct}", None, "#chat-log"),  # a direct conversation with the coop's founder
    ],
    "coop_admin": [  # the founder of Satoshi's Hunters
        Visit("/miners/{coop_admin}", "profile-own", "#workers"),
        Visit("/coop", "coop-dashboard", "#coop-chart"),
        Visit("/coop/manage", "coop-manage", "#coop-dissolve"),
        Visit("/notifications", "notifications", "#notification-list li"),
        Visit("/notifications?grouped=1"),
        Visit("/coop/moderation", "coop-moderation", "#main h1"),
        Visit("/activity", "activity", "li.activity-item"),
        Visit("/no-such-page", "404", "h1", status=404, allow_console=("404 (NOT FOUND)",)),
    ],
    "platform_admin": [
        Visit("/admin", "admin", "#admin-audit"),
        Visit("/admin/broadcast", "admin-broadcast"),
        Visit("/admin/coops"),
        Visit("/admin/users"),
        Visit("/admin/audit"),
        Visit("/admin/jobs"),
        Visit("/admin/reports"),
    ],
}


# ---- the world: a slice of the demo day ------------------------------------------------------

DEMO_SLICE_MINERS = (0, 1, 3, 7, 9, 12, 13, 15, 17, 20, 21)  # Satoshi's Hunters and Lisbon Lightning
SHARE_EVERY = 8  # of those miners' other shares, keep every 8th
USER_KEY = '"user":"'  # as the shared day spells it (compact JSON)


def demo_slice(path: Path) -> Path:
    """The shared day for the miners of two demo coops: every event but
    share_submitted, each share that raised its miner's best (so bests agree
    with the personal-best events), and every SHARE_EVERY-th other share —
    a few seconds to ingest."""
    miners = json.loads(demo_service.MINERS_FILE.read_text())
    wanted = {miners[i]["user_id"] for i in DEMO_SLICE_MINERS}
    shares, best = 0, {}
    with gzip.open(demo_service.EVENTS_FILE, "rt") as src, open(path, "w") as out:
        for line in src:
            at = line.find(USER_KEY)  # cheaper than parsing all 250,000 lines
            if at >= 0 and line[at + len(USER_KEY):line.find('"', at + len(USER_KEY))] not in wanted:
                continue
            envelope = json.loads(line)
            data = envelope["data"]
            user_id = data.get("user")
            if envelope["event"] == "share_submitted":
                shares += 1
                raised = data.get("accepted") and data.get("sdiff", 0) > best.get(user_id, 0)
                if raised:
                    best[user_id] = data["sdiff"]
                elif shares % SHARE_EVERY:
                    continue
            out.write(line)
    return path


def admin_world(platform_admin: User) -> None:
    """A spam coop dissolved and a delivered broadcast, for the admin pages."""
    spammer = db.session.get(User, json.loads(demo_service.MINERS_FILE.read_text())[45]["user_id"])
    spam = coops.create(spammer, name="FREE BTC CLICK HERE", description="Totally legit.")
    admin_service.dissolve_coop(platform_admin, coop_id=spam.id, reason="Spam name and scam link")
    row = broadcasts.create_broadcast(platform_admin, title="Pool maintenance on Sunday 02:00 UTC",
                                      body="Stratum will be down for about 10 minutes. Your miners reconnect by "
                                           "themselves.")
    broadcasts.fan_out(row.id)


@pytest.fixture
def world(live_server, make_user, tmp_path) -> dict[str, str]:
    """The demo slice loaded, a platform admin, and the values the visits'
    paths use; visitors map to (user_id, password) under ``logins``."""
    result = demo_service.load_demo(events_file=demo_slice(tmp_path / "slice.jsonl"), progress=False,
                                    echo=lambda _: None)
    assert result.published > 5000 and result.ingest.notifications > 0
    miners = json.loads(demo_service.MINERS_FILE.read_text())
    satoshi, hashmaster, outsider = (miners[i]["user_id"] for i in (0, 3, 40))
    platform_admin = make_user(display_name="PoolOps", is_admin=True)
    admin_world(platform_admin)
    lisbon = db.session.scalar(sa.select(Cooperative).where(Cooperative.name == "Lisbon Lightning"))
    founder, member = db.session.get(User, satoshi), db.session.get(User, hashmaster)
    if not relations.are_friends(satoshi, hashmaster):
        request, _ = friends.send_request(member, satoshi, "gm from the coop")
        if request.status == "pending":
            friends.accept(founder, request.id)
    direct, _ = direct_messages.start(member, ConversationKind.DIRECT, [satoshi])
    messages.post(satoshi, direct["id"], "Welcome to the **coop** — ask me anything.")
    values = {"invite_code": lisbon.invite_code, "coop_admin": satoshi, "member": hashmaster,
              "direct": str(direct["id"]),
              "unsubscribe_token": email_service.unsubscribe_token(satoshi, "mining")}
    logins = {"anonymous": None, "newcomer": (outsider, demo_service.DEMO_PASSWORD),
              "member": (hashmaster, demo_service.DEMO_PASSWORD), "coop_admin": (satoshi, demo_service.DEMO_PASSWORD),
              "platform_admin": (platform_admin.user_id, PASSWORD)}
    db.session.remove()
    return {"values": values, "logins": logins}


# ---- what is measured on a page --------------------------------------------------------------

# Every visible control a thumb aims at: the bell, the menu button, buttons,
# button-styled links, filter chips, the (open) menu's links, and the links
# that are a row's target (a name in a table cell, a person or conversation
# in a list). Links inside a sentence are not (WCAG 2.5.5's inline exception).
TAP_TARGETS = ("#notification-bell > summary, .menu-button, button, .button, .chips a, .pager a, input[type=submit], "
               ".nav a, .userbox > a, .account-menu a, td > a, .person-main > a")

TAP_CHECK = """(selector) => {
  const failures = [];
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || el.closest("[hidden]")) continue;
    if (el.checkVisibility && !el.checkVisibility({contentVisibilityAuto: true, visibilityProperty: true})) continue;
    let folded = false;  // inside a closed <details> (not its own summary): not on screen
    for (let d = el.closest("details:not([open])"); d; d = d.parentElement && d.parentElement.closest("details:not([open])")) {
      const summary = d.querySelector(":scope > summary");
      if (!summary || !summary.contains(el)) { folded = true; break; }
    }
    if (folded) continue;
    let box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;  // not shown (a closed menu, a closed panel)
    el.scrollIntoView({block: "center", inline: "center"});
    box = el.getBoundingClientRect();
    const name = (el.id ? "#" + el.id + " " : "") + el.tagName.toLowerCase() + " '" +
      (el.textContent || el.value || "").trim().slice(0, 30) + "'";
    if (box.width < TAP - 0.5 || box.height < TAP - 0.5) {
      failures.push(`${name} is ${Math.round(box.width)}x${Math.round(box.height)} px`);
      continue;
    }
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    if (!hit || !(hit === el || el.contains(hit))) {
      failures.push(`${name}: a tap at its centre hits ${hit ? hit.outerHTML.slice(0, 80) : "nothing"}`);
    }
  }
  window.scrollTo(0, 0);
  return failures;
}""".replace("TAP", str(TAP))


def overflow(page) -> str | None:
    """Why the page scrolls sideways, or None."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] <= widths[1]:
        return None
    culprits = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
        .slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className)""")
    return f"{widths[0]} px wide in a {widths[1]} px viewport; too wide: {culprits}"


ONE_LINE_FROM = 1024  # px: from here the top bar is one row (app.css)

HEADER_ITEMS = """() => {
  const shown = (el) => el.getBoundingClientRect().width > 0 && el.checkVisibility({visibilityProperty: true});
  return Array.from(document.querySelectorAll(
      '.topbar .brand, .topbar .nav a, .topbar .nav-search input, .topbar .userbox > a, #notification-bell > summary, ' +
      '.topbar .account-button, .topbar .menu-button'))
    .filter(shown).map((el) => {
      const box = el.getBoundingClientRect();
      return {name: (el.textContent || el.placeholder || el.className).trim().replace(/\\s+/g, ' ').slice(0, 30),
              top: box.top, bottom: box.bottom, left: box.left, right: box.right};
    });
}"""


def header_lines(page) -> str | None:
    """Why the top bar is not one line, or None: every visible item of it
    (the brand, the nav, the search box, Friends, Messages, the bell and
    the account button) crosses the middle of the brand's line, left to
    right in the order Tab reaches them."""
    items = page.evaluate(HEADER_ITEMS)
    if len(items) < 2:
        return f"the top bar shows {len(items)} item(s)"
    first = items[0]
    middle = (first["top"] + first["bottom"]) / 2
    off = [i["name"] for i in items[1:] if not i["top"] <= middle <= i["bottom"]]
    if off:
        return f"the top bar takes more than one line: {off} are not on the line of {first['name']!r} (items: {items})"
    # Left to right on screen is the Tab order (the document's), e.g. the bell.
    on_screen = [i["name"] for i in sorted(items, key=lambda i: i["left"])]
    if on_screen != [i["name"] for i in items]:
        return f"the top bar's order on screen is not its Tab order: {on_screen} against {[i['name'] for i in items]}"
    return None


def axe_violations(page) -> list[str]:
    """axe-core's critical and serious violations on the page, as text."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP stays as it is
    results = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter((v) => ['critical', 'serious'].includes(v.impact))
          .map((v) => `${v.impact} ${v.id} (${v.nodes.length}): ${v.help}; e.g. ${v.nodes[0].target.join(' ')}` +
               (v.nodes[0].failureSummary ? ' — ' + v.nodes[0].failureSummary.replace(/\\s+/g, ' ') : ''));
    }""")
    return results


def tap_failures(page) -> list[str]:
    """Tap targets that are too small or covered, with the menu closed and open."""
    failures = page.evaluate(TAP_CHECK, TAP_TARGETS)
    menu = page.locator(".menu-button")
    if menu.count() and menu.is_visible():
        menu.click()
        if page.get_attribute(".menu-button", "aria-expanded") != "true":
            failures.append("the menu button does not open the menu")
        failures += [f"(menu open) {f}" for f in page.evaluate(TAP_CHECK, ".nav a, .userbox > a, .userbox button, "
                                                                           ".account-menu a")]
        page.keyboard.press("Escape")
        if page.get_attribute(".menu-button", "aria-expanded") != "false":
            failures.append("Escape does not close the menu")
    return failures


# ---- 1 and 2: every page, both widths ------------------------------------------------------


def test_every_page_fits_a_phone_has_big_targets_and_no_serious_axe_violation(live_server, browser, world):
    base = live_server.url
    problems: list[str] = []
    shots: set[str] = set()
    for visits in VISITS.values():  # the one-width pictures these replaced
        for visit in visits:
            (SCREENSHOTS / f"{visit.shot}.png").unlink(missing_ok=True)
    for visitor, visits in VISITS.items():
        context = browser.new_context(viewport=PHONE)
        page = watch(context.new_page())
        try:
            if world["logins"][visitor]:
                login(page, base, *world["logins"][visitor])
            for visit in visits:
                path = visit.path.format(**world["values"])
                where = f"{visitor} {visit.path}"
                page.set_viewport_size(PHONE)
                response = page.goto(f"{base}{path}")
                if response.status != visit.status:
                    problems.append(f"{where}: status {response.status}")
                    continue
                if visit.ready:
                    page.wait_for_selector(visit.ready)
                if visitor != "anonymous" and page.locator("#notification-bell > summary").count() != 1:
                    problems.append(f"{where}: no bell")
                for viewport in (SMALL_PHONE, PHONE):
                    page.set_viewport_size(viewport)
                    if reason := overflow(page):
                        problems.append(f"{where} at {viewport['width']} px: {reason}")
                if visit.shot:  # before the tap checks, which leave the focus on the menu button
                    page.screenshot(path=str(SCREENSHOTS / f"{visit.shot}-390.png"), full_page=True,
                                    animations="disabled")
                problems += [f"{where} at 390 px: {f}" for f in tap_failures(page)]
                problems += [f"{where} at 390 px: axe {v}" for v in axe_violations(page)]
                for viewport in (*TABLETS, DESKTOP):
                    page.set_viewport_size(viewport)
                    if reason := overflow(page):
                        problems.append(f"{where} at {viewport['width']} px: {reason}")
                    if viewport["width"] >= ONE_LINE_FROM and (reason := header_lines(page)):
                        problems.append(f"{where} at {viewport['width']} px: {reason}")
                problems += [f"{where} at 1280 px: axe {v}" for v in axe_violations(page)]
                if visit.shot:
                    page.mouse.move(DESKTOP["width"] - 1, DESKTOP["height"] - 1)  # no hover left from the taps
                    page.screenshot(path=str(SCREENSHOTS / f"{visit.shot}-1280.png"), full_page=True,
                                    animations="disabled")
                    shots.add(visit.shot)
            allow = tuple(a for visit in visits for a in visit.allow_console)
            try:
                assert_clean_console(page, allow=allow)
            except AssertionError as exc:
                problems.append(f"{visitor}: console {exc}")
        finally:
            context.close()
    assert problems == [], "\n".join(problems)
    assert shots == {"login", "register", "profile-own", "profile-other", "coop-dashboard", "coop-manage",
                     "notifications", "activity", "settings", "404", "coop-join", "admin", "admin-broadcast",
                     "coop-moderation", "coop-directory", "leaderboard", "coop-chat"}


def test_every_page_route_is_visited(app):
    """A new page joins ``VISITS`` (or ``NOT_PAGES``): the test above then checks it."""
    adapter = app.url_map.bind("localhost")
    visited = set()
    for visits in VISITS.values():
        for visit in visits:
            path = visit.path.format_map(_Anything()).split("?")[0]
            try:
                endpoint, _ = adapter.match(path, method="GET")
            except Exception:  # the 404 visit
                continue
            visited.add(endpoint)
    pages = {rule.endpoint for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("pages_") and "GET" in (rule.methods or ())}
    missing = sorted(pages - visited - NOT_PAGES)
    assert missing == [], f"page routes no visitor of VISITS opens (add a Visit, or list a fragment or file in NOT_PAGES): {missing}"


class _Anything(dict):
    def __missing__(self, key: str) -> str:
        return "1234567"  # digits: matches string and int path parts alike


# ---- keyboard and screen readers ----------------------------------------------------------


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE)
    yield watch(context.new_page())
    context.close()


def test_skip_link_menu_button_and_bell_work_from_the_keyboard(live_server, phone, make_user):
    user_id = make_user(display_name="KeyboardKim").user_id
    first = notifications.notify(user_id, "system", "announcement", "Pool maintenance tonight",
                                 link="/settings").id
    db.session.remove()
    page, base = phone, live_server.url
    login(page, base, user_id, PASSWORD)
    goto_live(page, f"{base}/activity")

    # The skip link comes first and moves the focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"

    # The menu button opens the menu from the keyboard; Escape closes it and keeps the focus on it.
    menu = page.locator(".menu-button")
    assert menu.get_attribute("aria-expanded") == "false"
    assert not page.locator("#site-menu a[href='/settings']").is_visible()
    menu.focus()
    page.keyboard.press("Enter")
    assert menu.get_attribute("aria-expanded") == "true"
    assert page.locator("#site-menu a[href='/settings']").is_visible()
    assert axe_violations(page) == []  # the open menu too
    page.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false"
    assert page.evaluate("() => document.activeElement.classList.contains('menu-button')")
    # ... and a tap outside closes it.
    menu.click()
    menu_bottom = page.evaluate("() => document.getElementById('site-menu').getBoundingClientRect().bottom")
    assert menu_bottom < PHONE["height"] - 10, menu_bottom  # the open menu leaves room to tap outside it
    page.mouse.click(200, PHONE["height"] - 5)
    assert menu.get_attribute("aria-expanded") == "false"

    # The bell: Escape closes it and gives the focus back to it; so does a click outside.
    bell = page.locator("#notification-bell")
    page.focus("#notification-bell > summary")
    page.keyboard.press("Enter")
    assert bell.evaluate("(d) => d.open")
    page.keyboard.press("Escape")
    assert not bell.evaluate("(d) => d.open")
    assert page.evaluate("() => document.activeElement.parentElement.id") == "notification-bell"
    page.click("#notification-bell > summary")
    assert page.locator(f"#bell-item-{first} a").is_visible()
    assert axe_violations(page) == []  # the open panel too
    page.mouse.click(200, 700)
    assert not bell.evaluate("(d) => d.open")
    # Clicking an item opens it: its link, and it is read on the way.
    page.click("#notification-bell > summary")
    with page.expect_navigation():
        page.click(f"#bell-item-{first} a")
    assert page.url == f"{base}/settings"
    assert page.locator("#notification-badge").get_attribute("data-count") == "0"
    assert_clean_console(page)


def test_desktop_top_bar_is_one_line_and_its_account_menu_works_from_the_keyboard(live_server, browser, make_user):
    """From 1024 px the top bar is one row even for a platform admin with a
    64-character name, a friend request and a three-digit unread count; the
    account links (profile, Settings, Log out) sit behind a disclosure button:
    Enter opens it (aria-expanded), Tab walks into it, Escape closes it and
    gives the focus back, tabbing past its last item or clicking outside
    closes it, and axe-core finds nothing serious with it open."""
    user = make_user(display_name="Dorothea Hashrate-Montgomery of the Lisbon Lightning Cooperative",
                     is_admin=True)
    user_id = user.user_id
    friends.send_request(make_user(display_name="Requester"), user_id, "Mine with us?")
    for i in range(105):
        notifications.notify(user_id, "system", "announcement", f"Notice {i}", link="/settings")
    db.session.remove()
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = watch(context.new_page())
        base = live_server.url
        login(page, base, user_id, PASSWORD)
        goto_live(page, f"{base}/activity")
        assert page.locator("#notification-badge").inner_text() == "106"  # the friend request is one more
        assert page.locator("#friend-requests-badge").inner_text() == "1"
        for viewport in (TABLETS[1], DESKTOP):
            page.set_viewport_size(viewport)
            assert header_lines(page) is None, viewport
            brand, account = (page.locator(sel).bounding_box() for sel in (".topbar .brand", ".account-button"))
            assert abs((brand["y"] + brand["height"] / 2) - (account["y"] + account["height"] / 2)) < 1
            assert account["x"] + account["width"] <= viewport["width"] and overflow(page) is None
            assert not page.locator(".menu-button").is_visible()
            assert page.locator("#nav-search-q").is_visible() and page.locator("#notification-bell > summary").is_visible()

        button = page.locator(".account-button")
        settings = page.locator("#account-menu a[href='/settings']")
        assert button.get_attribute("aria-expanded") == "false" and not settings.is_visible()
        assert "Dorothea" in button.inner_text()
        button.focus()
        page.keyboard.press("Enter")
        assert button.get_attribute("aria-expanded") == "true" and settings.is_visible()
        assert page.locator("#account-menu button", has_text="Log out").is_visible()
        assert axe_violations(page) == []  # the open menu too
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.closest('#account-menu') !== null")
        page.keyboard.press("Escape")
        assert button.get_attribute("aria-expanded") == "false" and not settings.is_visible()
        assert page.evaluate("() => document.activeElement.classList.contains('account-button')")
        # Space opens it too; tabbing past Log out, its last item, closes it.
        page.keyboard.press(" ")
        assert button.get_attribute("aria-expanded") == "true"
        for _ in range(3):  # the profile link, Settings, Log out
            page.keyboard.press("Tab")
            assert button.get_attribute("aria-expanded") == "true"
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Log out"
        page.keyboard.press("Tab")
        assert button.get_attribute("aria-expanded") == "false"
        # A click outside closes it; the bell and the menu never hang open together.
        button.click()
        assert settings.is_visible()
        page.mouse.click(640, 700)
        assert button.get_attribute("aria-expanded") == "false"
        button.click()
        page.click("#notification-bell > summary")
        assert button.get_attribute("aria-expanded") == "false"
        assert page.locator("#notification-bell").evaluate("(d) => d.open")
        page.keyboard.press("Escape")
        # Settings from the menu.
        button.click()
        with page.expect_navigation():
            settings.click()
        assert page.url == f"{base}/settings"
        assert page.locator("#account-menu a[href='/settings']").get_attribute("aria-current") == "page"
        assert_clean_console(page)
    finally:
        context.close()


def test_focus_stays_after_mark_read_and_delete(live_server, phone, make_user):
    user_id = make_user().user_id
    ids = [notifications.notify(user_id, "mining", "block_found", f"Block {i}").id for i in range(3)]
    db.session.remove()
    page, base = phone, live_server.url
    login(page, base, user_id, PASSWORD)
    page.goto(f"{base}/notifications")
    newest, middle, oldest = ids[2], ids[1], ids[0]

    # Mark read: the item stays, the focus moves to its remaining action (Delete), not to <body>.
    page.focus(f"#notification-{middle} .notification-actions button:text('Mark read')")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => !document.querySelector('#notification-{middle}').classList.contains('unread')")
    page.wait_for_function("() => document.activeElement !== document.body")
    focused = page.evaluate("() => [document.activeElement.closest('li') && document.activeElement.closest('li').id,"
                            " document.activeElement.textContent.trim()]")
    assert focused == [f"notification-{middle}", "Delete"]

    # Delete: the item goes, the focus moves to the next item's first action.
    page.keyboard.press("Enter")
    page.locator(f"#notification-{middle}").wait_for(state="detached")
    page.wait_for_function("() => document.activeElement !== document.body")
    assert page.evaluate("() => document.activeElement.closest('li').id") == f"notification-{oldest}"
    # Delete the last one: the focus goes back up to the previous item.
    page.focus(f"#notification-{oldest} .notification-actions button:text('Delete')")
    page.keyboard.press("Enter")
    page.locator(f"#notification-{oldest}").wait_for(state="detached")
    page.wait_for_function("() => document.activeElement !== document.body")
    assert page.evaluate("() => document.activeElement.closest('li').id") == f"notification-{newest}"
    assert_clean_console(page)


def test_a_pushed_notification_is_announced(live_server, phone, make_user):
    user_id = make_user().user_id
    page, base = phone, live_server.url
    login(page, base, user_id, PASSWORD)
    goto_live(page, f"{base}/settings")
    live = page.locator("#live-announcer")
    assert live.get_attribute("aria-live") == "polite" and live.inner_text() == ""
    notifications.notify(user_id, "mining", "personal_best", "New best 1.2T")
    db.session.remove()
    page.wait_for_function("() => document.getElementById('live-announcer').textContent !== ''")
    assert live.inner_text() == "New notification: New best 1.2T"
    assert_clean_console(page)


def test_without_javascript_the_phone_menu_is_open(live_server, browser, make_user):
    """The menu button needs app.js; without it (nojs.css through <noscript>)
    the menu's links are shown and the button is hidden, and the page still
    fits; on a desktop the account links are shown in the row."""
    user_id = make_user().user_id
    db.session.remove()
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        login(page, live_server.url, user_id, PASSWORD)
        page.goto(f"{live_server.url}/settings")
        assert not page.locator(".menu-button").is_visible()
        assert page.locator("#site-menu a[href='/activity']").is_visible()
        assert page.locator("#site-menu button", has_text="Log out").is_visible()
        assert overflow(page) is None
        # From 1024 px the account button cannot open its drop-down: its links sit in the row instead.
        page.set_viewport_size(DESKTOP)
        assert not page.locator(".account-button").is_visible()
        assert page.locator("#account-menu a[href='/settings']").is_visible()
        assert page.locator("#account-menu button", has_text="Log out").is_visible()
        assert overflow(page) is None
    finally:
        context.close()
