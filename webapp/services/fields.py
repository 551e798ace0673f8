"""Checks for free-form fields that other services and users hand us
(titles, bodies, links, JSON data), shared by notifications and activities.
Each raises ValidationError (400) instead of letting the database refuse the
value with a 500."""
from __future__ import annotations

import json
import math
from typing import Any

from ..urls import is_same_site_path
from . import inputs
from .errors import ValidationError

MAX_LINK = 512
MAX_DATA_DEPTH = 8
MAX_DATA_BYTES = 8192


def check_text(name: str, value: str, kind: str = inputs.LINE) -> None:
    """The text rule of ``services.inputs`` (``LINE`` for titles, subtypes
    and links, ``MULTILINE`` for bodies and descriptions). Raises
    ValidationError."""
    inputs.check_text(value, name=name, kind=kind)


def check_link(link: str | None, name: str = "link") -> None:
    """A link is a same-site path (``/coops/3``, ``urls.is_same_site_path``:
    no ``//`` or ``/\\`` start) or an http(s) URL, at most 512 characters,
    no white space; anything else (``javascript:``) would be a script in
    every page that shows it."""
    if link is None:
        return
    if not isinstance(link, str) or not 1 <= len(link) <= MAX_LINK:
        raise ValidationError(f"{name} must be 1 to {MAX_LINK} characters.")
    check_text(name, link)
    is_path = is_same_site_path(link)
    if not (is_path or link.startswith(("https://", "http://"))) or any(c.isspace() for c in link):
        raise ValidationError(f"{name} must be a path starting with '/' or an http(s) URL.")


def _check_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DATA_DEPTH:
        raise ValidationError(f"{path} is nested too deeply (at most {MAX_DATA_DEPTH} levels).")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{path} keys must be strings.")
            check_text(f"{path} key", key)
            _check_value(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{path} must be a finite number.")
    elif isinstance(value, str):
        check_text(path, value, inputs.MULTILINE)
    elif value is not None and not isinstance(value, (bool, int)):
        raise ValidationError(f"{path} must be JSON.")


def check_data(data: Any, name: str = "data", max_bytes: int = MAX_DATA_BYTES) -> None:
    """``data`` is None or a JSON object of finite numbers and strings
    (keys ``LINE``, values ``MULTILINE`` text), nested at most 8 deep, at
    most ``max_bytes`` of JSON."""
    if data is None:
        return
    if not isinstance(data, dict):
        raise ValidationError(f"{name} must be a JSON object.")
    _check_value(data, name, 0)
    if len(json.dumps(data)) > max_bytes:
        raise ValidationError(f"{name} must be at most {max_bytes} bytes of JSON.")
