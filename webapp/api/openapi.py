"""Request validation and the OpenAPI 3.1 document at ``/api/openapi.json``,
both from the same pydantic models, through SpecTree (``spectree``).

Each JSON route is decorated with ``@endpoint(...)`` (its responses, errors,
authentication and tags) and names its request models in its signature:
``json: Body`` for the JSON body, ``query: Query`` for the query string,
``headers: Headers`` for request headers. SpecTree validates them before the
view runs, passes the parsed models in, checks what the view returns against
the response model of its status, and writes the document from the same
models, so the contract is written once. A route without ``@endpoint`` fails
``test_every_api_route_is_documented``.

Kept from API.md: every refusal is 400 ``validation_error`` with the JSON
error body (``before`` hook below); the body is read by
``inputs.load_json`` (no NaN, bounded depth, any content type, empty is
``{}``). ``@endpoint`` goes below ``@api_auth_required`` (or
``service_token_required``) so that a caller without credentials gets 401
before any 400.
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any, cast

from flask import Blueprint, Flask, current_app, make_response, request
from flask import Response as FlaskResponse
from pydantic import BaseModel
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.model_adapter import ModelAdapterType
from spectree.model_adapter.pydantic_adapter import PydanticModelAdapter
from spectree.models import SecureType
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items
from werkzeug.http import http_date

from ..auth import checked_first, require_service_token
from ..extensions import limiter
from ..services import inputs
from ..services.errors import ValidationError
from .validation import error_details, validate

bp = Blueprint("api_openapi", __name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"code", "message"}}`` (API.md)."""

    error: ErrorDetail


class _KeysAsGiven(PydanticModelAdapter):
    """Responses are serialised by their model, keeping only the keys the
    view set: API.md makes some keys absent rather than null
    (``invite_code`` for non-admins, ``leaderboard_rank`` ...)."""

    def dump_json(self, value: Any) -> bytes:
        if isinstance(value, BaseModel):
            return value.model_dump_json(exclude_unset=True).encode()
        return super().dump_json(value)


class _ApiPlugin(FlaskPlugin):
    """SpecTree's Flask plugin, reading bodies and path ids our way."""

    def request_validation(self, request, query, json, form, headers, cookies):
        # The body is JSON whatever its content type (an empty one is {}),
        # decoded by inputs.load_json: not JSON, NaN/Infinity or too deep
        # nesting raise ValidationError, as does a body that is not an object.
        body = None
        if json is not None:
            data = inputs.load_json(request.data, text_rule=False) if request.data else {}
            body = validate(json, data)
        request.context = Context(
            self.model_adapter.validate_obj(query, get_multidict_items(request.args, query)) if query else None,
            body,
            None,
            self.model_adapter.validate_obj(headers, dict(iter(request.headers))) if headers else None,
            None,
        )

    def find_routes(self):
        return (rule for rule in super().find_routes() if rule.rule.startswith("/api/"))

    def parse_path(self, route, path_parameter_descriptions):
        path, params = super().parse_path(route, path_parameter_descriptions)
        for param in params:
            if param["schema"].get("type") == "integer":
                # <int:> is ASCII digits up to MAX_ID (webapp/input_gate.py); larger is 404.
                param["schema"] = {"type": "integer", "minimum": 0, "maximum": inputs.MAX_ID}
        return path, params


def _refuse(req, resp, req_validation_error, instance, model_adapter) -> None:
    """A request that breaks its model: 400 ``validation_error`` naming the
    fields (``details``), the body of API.md instead of SpecTree's list."""
    if req_validation_error is not None:
        details = error_details(req_validation_error)
        raise ValidationError(f"{details[0]['field']}: {details[0]['message']}", details=details)


def _check_response(req, resp, resp_validation_error, instance, model_adapter) -> None:
    """A view answered something its response model does not allow: a bug,
    reported as a 500 (with the JSON error body) rather than sent on."""
    if resp_validation_error is not None:
        raise RuntimeError(f"{req.method} {req.path}: response breaks its model: {resp_validation_error}")


api = SpecTree(
    backend=_ApiPlugin,
    model_adapter=cast(ModelAdapterType, _KeysAsGiven()),  # as spectree.get_pydantic_model_adapter does
    mode="strict",  # document only the routes decorated with @endpoint
    title="Solo Mining social layer",
    version="1.0.0",
    description="JSON routes of the social layer; the contract is API.md.",
    validation_error_status=400,
    validation_error_model=ErrorBody,
    before=_refuse,
    after=_check_response,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")),
        SecurityScheme(name="serviceToken",
                       data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", description="SERVICE_TOKEN")),
    ],
)

_SECURITY: dict[str, dict[str, list[str]] | None] = {"user": {"bearer": []}, "service": {"serviceToken": []}, "none": None}


def endpoint(
    *,
    ok: dict[int, type[BaseModel]],
    errors: Iterable[int] = (),
    auth: str = "user",
    tags: Sequence[str] = (),
    conditional: bool = False,
) -> Callable:
    """Validate and document one JSON route (the view's docstring is its summary).

    ``ok`` maps success statuses to response models; ``errors`` lists the
    error statuses the route answers beyond those every route may answer
    (400, 413, 429, and 401 unless ``auth`` is "none"), each with the error
    body. ``auth``: "user" (bearer or session), "service" (service token)
    or "none". Request models come from the view's ``json``, ``query`` and
    ``headers`` parameters. ``conditional``: a read that clients poll,
    answered with an ETag and 304 on a matching ``If-None-Match``
    (``conditional_response``).
    """
    statuses: dict[str, Any] = {f"HTTP_{code}": model for code, model in ok.items()}
    for code in {*errors, 400, 413, 429, *((401,) if auth != "none" else ())}:
        statuses[f"HTTP_{code}"] = ErrorBody
    if conditional:
        statuses["HTTP_304"] = None
    validate = api.validate(resp=Response(**statuses), tags=tags, security=_SECURITY[auth], force_resp_serialize=True)
    if not conditional:
        return validate

    def decorator(view: Callable) -> Callable:
        validated = validate(view)

        @wraps(validated)
        def wrapper(*args: Any, **kwargs: Any) -> FlaskResponse:
            return conditional_response(make_response(validated(*args, **kwargs)), private=auth != "none")

        return wrapper

    return decorator


# The request headers that can make an answer conditional (304, 412) or partial.
_CONDITIONAL_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE",
                        "HTTP_IF_RANGE", "HTTP_RANGE")


def conditional_response(response: FlaskResponse, *, private: bool) -> FlaskResponse:
    """Give a 200 answer to GET a weak ETag (a hash of its body) and answer
    304 Not Modified, without the body, when the request's
    ``If-None-Match`` names it (API.md "Conditional requests").
    ``Cache-Control: no-cache``: caches keep it but ask again every time;
    ``private`` (the caller's own data) keeps shared caches out, and
    ``Vary`` names the credentials the answer depends on."""
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    headers = response.headers
    response.set_etag(hashlib.blake2b(response.get_data(), digest_size=12).hexdigest(), weak=True)
    headers["Cache-Control"] = "private, no-cache" if private else "no-cache"
    if private:
        if "Vary" in headers:
            response.vary.update(("Authorization", "Cookie"))
        else:  # what the update writes on an empty Vary, without parsing it
            headers["Vary"] = "Authorization, Cookie"
    environ = request.environ
    if any(name in environ for name in _CONDITIONAL_HEADERS):
        return cast(FlaskResponse, response.make_conditional(request))
    # No validator and no range asked: what make_conditional would do then
    # (a Date header, the length), without parsing what is not there.
    if "Date" not in headers:
        headers["Date"] = http_date()
    if response.automatically_set_content_length and "Content-Length" not in headers:
        length = response.calculate_content_length()
        if length is not None:
            headers["Content-Length"] = str(length)
    return response


def service_token_required(view: Callable) -> Callable:
    """Decorator: ``auth.require_service_token`` before anything else (401)."""
    return checked_first(require_service_token)(view)


def _tidy(spec: dict[str, Any]) -> dict[str, Any]:
    """Parameters as clients read them: no empty descriptions, no titles
    repeating the name, no ``default: null``."""
    spec = copy.deepcopy(spec)
    for operations in spec["paths"].values():
        for op in operations.values():
            for param in op.get("parameters", []):
                if not param.get("description"):
                    param.pop("description", None)
                schema = param["schema"]
                schema.pop("title", None)
                if "default" in schema and schema["default"] is None:
                    del schema["default"]
            if not op.get("description"):
                op.pop("description", None)
    return spec


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every ``@endpoint`` route. SpecTree builds it
    once, from the first app that asks: every app registers the same API
    blueprints (``api.register``)."""
    cached = app.extensions.get("openapi_document")
    if cached is None:
        with app.app_context():
            cached = app.extensions["openapi_document"] = _tidy(api.spec)
    return cached


@bp.get("/openapi.json")
@limiter.exempt
def spec():
    return build_spec(current_app)
