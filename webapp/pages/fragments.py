"""How a page answers htmx: the fragment that the full page includes, so
that htmx swaps it in place, and the full page for a plain request (a link
opened in a new tab, a form posted without JavaScript)."""
from __future__ import annotations

from typing import Any

from flask import render_template, request


def is_htmx() -> bool:
    """True when htmx sent the request (it sets ``HX-Request: true``)."""
    return request.headers.get("HX-Request") == "true"


def fragment_or_page(fragment: str, page: str, **context: Any) -> str:
    """Template ``fragment`` rendered for htmx, else ``page`` (which
    includes it), both with ``context``."""
    return render_template(fragment if is_htmx() else page, **context)


def admin_section(template: str, title: str, **context: Any) -> str:
    """A section of ``/admin``: ``template`` alone for htmx (lazy-loaded or
    refreshed inside the admin page), else inside ``admin/section.html`` as a
    page of its own titled ``title``."""
    if is_htmx():
        return render_template(template, **context)
    return render_template("admin/section.html", section_template=template, title=title, **context)
