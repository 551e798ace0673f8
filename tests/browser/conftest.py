"""Browser fixtures: the app served by a real threaded server on a free
port, and headless Chromium from Debian's packages (found on PATH) driven by
Playwright through ``executable_path`` — never a downloaded browser."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from ..builders import serve_own_origin

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Debian's chromium is not on PATH; `make test` installs it (apt-get install chromium).")
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app, make_app):
    """A server for a second app on the same database and Redis, whose
    origin is its own ``http://127.0.0.1:<port>``."""
    server = serve_own_origin(make_app)
    yield server
    server.stop()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)`` saves docs/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")  # slide-ins finished
        return path

    return take


def login(page, base_url: str, user_id: str, password: str) -> None:
    """Log in through the real form (and fail at once if the form refuses)."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=user_id]", user_id)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert not page.url.startswith(f"{base_url}/login"), f"login of {user_id} failed"


# ---- pages that record what a user would not see -------------------------------------


def watch(page, *, accept_dialogs: bool = True):
    """Record the page's console (``page.console``: (type, text)), its CSP
    violations (``page.csp_errors``) and its /ws sockets (``page.sockets``:
    one list of received frames per socket, in opening order); accept
    ``hx-confirm`` dialogs unless told not to. Returns the page."""
    page.console, page.csp_errors, page.sockets = [], [], []

    def on_console(msg) -> None:
        page.console.append((msg.type, msg.text))
        if "Content Security Policy" in msg.text:
            page.csp_errors.append(msg.text)

    def on_websocket(ws) -> None:
        if "/ws" in ws.url:
            frames: list = []
            page.sockets.append(frames)
            ws.on("framereceived", lambda payload: frames.append(payload))

    page.on("console", on_console)
    page.on("websocket", on_websocket)
    if accept_dialogs:
        page.on("dialog", lambda dialog: dialog.accept())
    return page


@pytest.fixture
def page(browser):
    """A page in a fresh browser context, watched (see ``watch``)."""
    context = browser.new_context()
    yield watch(context.new_page())
    context.close()


def wait_socket(page, opened: int, timeout: float = 5.0) -> None:
    """Wait until a socket opened after the first ``opened`` ones has
    received its first frame (the unread count, sent once the server has
    subscribed the user's channel), so every push from now on reaches the page."""
    deadline = time.monotonic() + timeout
    while not (len(page.sockets) > opened and page.sockets[-1]):
        if time.monotonic() > deadline:
            raise AssertionError(f"the live socket of {page.url} sent nothing within {timeout} s")
        page.wait_for_timeout(20)


def goto_live(page, url: str, timeout: float = 5.0) -> None:
    """Open ``url`` and wait until its live socket is ready (``wait_socket``)."""
    opened = len(page.sockets)
    page.goto(url)
    wait_socket(page, opened, timeout)


def assert_no_csp_errors(page) -> None:
    """No console message of the page mentions the Content Security Policy."""
    assert page.csp_errors == [], page.csp_errors


def assert_clean_console(page, allow: tuple[str, ...] = ()) -> None:
    """No CSP violation and no console error (htmx logs its swap errors,
    e.g. an oob element without a target, as console errors), except those
    containing one of ``allow``."""
    assert_no_csp_errors(page)
    errors = [text for kind, text in page.console if kind == "error" and not any(a in text for a in allow)]
    assert errors == [], errors
