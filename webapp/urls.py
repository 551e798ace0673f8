"""The one same-site check for redirect targets (``next=`` after login or
registration, a page's "back", a notification's path link).

A target is accepted only as a path on this site: it starts with exactly one
``/`` and consists of printable ASCII without a backslash. That refuses what
a browser would send to another origin:

- ``//evil.example`` and ``///evil.example`` (scheme-relative),
- ``/\\evil.example``, ``\\\\evil.example``, ``\\/evil.example`` (browsers read
  ``\\`` as ``/`` in http(s) URLs, so these are ``//evil.example`` too),
- ``https://evil.example``, ``javascript:…``, ``evil.example`` (no leading ``/``),
- tabs, new lines, spaces, NUL and other control characters (browsers drop
  tabs and new lines inside URLs and trim C0 controls and spaces around
  them, which turns ``/\\t/evil.example`` into ``//evil.example``),
- any non-ASCII character (Unicode look-alikes of ``/`` and ``\\``; a real
  path reaches us percent-encoded).

Percent-encoded characters stay as they are: a browser never decodes
``%2F`` or ``%5C`` into the authority, so ``/%2F%2Fevil.example`` is a path here.
"""
from __future__ import annotations

MAX_TARGET = 2048


def is_same_site_path(target: object) -> bool:
    """Whether ``target`` is a redirect target on this site (see the module doc)."""
    if not isinstance(target, str) or not 1 <= len(target) <= MAX_TARGET:
        return False
    if target[0] != "/" or target[1:2] == "/":
        return False
    return all("\x21" <= c <= "\x7e" and c != "\\" for c in target)


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a same-site path, else ``default``."""
    return target if target is not None and is_same_site_path(target) else default
