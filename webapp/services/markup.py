"""User Markdown to safe HTML: the small subset chat messages and profile
bios allow (API.md "Conversations and messages": bold, italic, code, links),
rendered by markdown-it-py and cleaned by nh3 (the Rust ammonia sanitiser).
We never escape user Markdown ourselves."""
from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

# CommonMark with every block rule off but paragraphs: no headings, lists,
# images, tables or raw HTML; inline emphasis, code spans and links stay.
_md = (
    MarkdownIt("zero", {"html": False, "linkify": False, "breaks": True})
    .enable(["emphasis", "backticks", "link", "newline", "escape", "entity"])
)

ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "a"}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
_URL_SCHEMES = {"http", "https", "mailto"}
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9._-]{3,128})")


def render(text: str) -> str:
    """``text`` (user Markdown, str) as sanitised HTML (str): only
    ``ALLOWED_TAGS``; links keep http(s)/mailto targets and open with
    ``rel="nofollow noopener noreferrer"``. Safe to mark ``|safe`` in Jinja."""
    html = _md.render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="nofollow noopener noreferrer",
    )


def mentions(text: str) -> list[str]:
    """The distinct ``@user_id`` names in ``text``, in order of appearance
    (user ids are 3–128 characters of ``[A-Za-z0-9._-]``, API.md)."""
    seen: dict[str, None] = {}
    for name in _MENTION.findall(text):
        seen.setdefault(name.rstrip("."), None)
    return list(seen)
