"""Fuzz every page route (pages have no OpenAPI document): walk
``app.url_map``, and for every page rule and method, as a visitor, a
platform admin who runs a coop and a miner in no coop, send hostile path
segments, query values and form values. No response may be a 5xx and no
error may escape the app (which a real server answers with its raw 500
page). Two passes per rule:

* systematic: each field the view's module reads, and each path segment,
  poisoned in turn (a NUL or ESC slipped into an otherwise valid value,
  ``²`` or ``١`` instead of a number) while the others carry valid values,
  so the poison reaches the code behind them;
* random: Hypothesis-generated hostile values (tests/fuzz_strategies.py)
  for any subset of every field name the pages read or render.

Field names are read from the code and the templates, so a new parameter
is fuzzed without touching this file. The socket route is fuzzed over real
sockets in tests/test_ws_input.py.
"""
from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.extensions import db
from webapp.models import Cooperative, CooperativeMember
from webapp.services import activity, coops, notifications
from webapp.services.membership import is_active_coop, is_active_member
from webapp.vocabulary import MemberRole

from . import builders
from .builders import PASSWORD, AuthActions
from .fuzz_strategies import digits, hostile, hostile_segment

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = 6  # random examples per rule and persona (after the systematic pass); derandomized
POISONS = [("insert", "\x00"), ("insert", "\x1b"), ("replace", "²"), ("replace", "١")]


def _names_in(text: str) -> set[str]:
    names = set(re.findall(r'(?:args|form|values|source)\.get(?:list)?\(\s*"(\w+)"', text))
    names |= set(re.findall(r'(?:args|form|values)\[\s*"(\w+)"\s*\]', text))
    names |= set(re.findall(r'(?:int_arg|_int_arg|_section_arg|parse_bool_arg)\(\s*"(\w+)"', text))
    names |= {"cursor"} if "parse_cursor" in text else set()
    names |= {"limit"} if "parse_limit" in text else set()
    return names


def _field_names() -> list[str]:
    """Every query/form field name the pages read or render."""
    names: set[str] = set()
    for path in (ROOT / "webapp").rglob("*.py"):
        names |= _names_in(path.read_text())
    for path in (ROOT / "webapp" / "templates").rglob("*.html"):
        names |= set(re.findall(r'\bname="(\w+)"', path.read_text()))
    names.discard("csrf_token")
    return sorted(names)


FIELDS = _field_names()
_fresh = itertools.count()


def _benign(name: str, world: dict) -> str:
    """A value the field accepts, so that only the poisoned one is wrong."""
    fixed = {"email": "fuzz@example.org", "country_code": "PT", "password": PASSWORD, "invite_code": world["code"],
             "next": "/", "limit": "20", "q": "Fuzz", "reason": "Fuzzing", "title": "Fuzz title", "body": "Fuzz body",
             "link": "/coop", "name": "Fuzz Coop", "description": "Fuzzed", "display_name": "Fuzz Name"}
    if name == "user_id":
        return f"bc1qfuzzfresh{next(_fresh)}"  # registration needs a new id each time
    if name in fixed:
        return fixed[name]
    if name.endswith("_id") or name in ("since",):
        return "1"
    return ""  # cursors, sections, filters: absent


def _page_rules(app) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api", "/static")) or rule.websocket:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.append((rule.rule, method))
    return sorted(set(rules))


def _all_rules() -> list[tuple[str, str]]:
    from webapp import create_app

    # Only the URL map is read: nothing connects to these.
    return _page_rules(create_app({"TESTING": True, "SECRET_KEY": "x", "REDIS_URL": "", "EMBEDDED_SCHEDULER": False,
                                   "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://collect@127.0.0.1/none"}))


# Deleting the account (given its password, which the fuzz sends as a benign
# value) would end the persona for every later route; tests/test_your_data.py
# covers that route, its refusals included.
DESTRUCTIVE = {("/settings/delete", "POST")}
RULES = [rule for rule in _all_rules() if rule not in DESTRUCTIVE]
_ARG = re.compile(r"<(?:(?P<conv>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def _build_world() -> dict:
    """A platform admin running a coop with one member, a miner in no coop,
    notifications and activity to act on."""
    admin = builders.make_user("bc1qfuzzadmin", display_name="Fuzz Admin", is_admin=True)
    member = builders.make_user("bc1qfuzzmember", display_name="Fuzz Member")
    loner = builders.make_user("bc1qfuzzloner", display_name="Fuzz Loner")
    for user in (admin, loner):
        notifications.notify(user.user_id, "system", "fuzz", "Fuzz notification", "body")
    activity.record_activity(admin.user_id, "badge_earned", "Fuzz badge")
    db.session.commit()
    world = {"admin": admin, "member": member, "loner": loner,
             "ids": {"admin": admin.user_id, "member": member.user_id, "loner": loner.user_id}}
    _restore(world)
    return world


def _intact(world: dict) -> bool:
    """Whether what ``_restore`` sets up still holds, in one query (the loner
    persona asks before every request): the loner in no coop, the admin the
    active admin of the active coop ``coop_id`` whose code is ``code``, the
    member active in it."""
    if "coop_id" not in world:
        return False

    def active(user_id: str, *where) -> sa.Exists:
        return sa.exists().where(CooperativeMember.user_id == user_id, is_active_member(), *where)

    coop_id, ids = world["coop_id"], world["ids"]  # strings: the users' objects expire with the rollback
    return bool(db.session.scalar(sa.select(sa.and_(
        ~active(ids["loner"]),
        active(ids["admin"], CooperativeMember.cooperative_id == coop_id,
               CooperativeMember.role == MemberRole.ADMIN.value),
        active(ids["member"], CooperativeMember.cooperative_id == coop_id),
        sa.exists().where(Cooperative.id == coop_id, is_active_coop(), Cooperative.invite_code == world["code"]),
    ))))


def _restore(world: dict) -> None:
    """Undo what earlier examples changed that would hide later code: the
    admin runs a coop with the member in it, the loner is in no coop."""
    db.session.rollback()
    if _intact(world):
        return
    for user in (world["admin"], world["member"], world["loner"]):
        db.session.refresh(user)
    mine = coops.get_mine(world["loner"])
    if mine is not None:
        coops.leave(world["loner"], coop_id=mine.id)
    coop = coops.get_mine(world["admin"])
    if coop is None or not coops.is_admin(world["admin"], coop):
        if coop is not None:
            coops.leave(world["admin"], coop_id=coop.id)
        coop = coops.create(world["admin"], name="Fuzz Coop", description="fuzzed")
    if coops.get_mine(world["member"]) is None:
        coops.join(world["member"], invite_code=coop.invite_code)
    world.update(coop_id=coop.id, code=coop.invite_code)


def _path_value(conv: str | None, name: str, world: dict) -> st.SearchStrategy[str]:
    real = {"user_id": [world["member"].user_id, world["admin"].user_id], "code": [world["code"]],
            "coop_id": [str(world["coop_id"])]}.get(name, ["1"])
    if conv == "int":
        return st.one_of(st.sampled_from(real), digits, st.integers(0, 2**64).map(str))
    return st.one_of(st.sampled_from(real), hostile_segment)


def _fields() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={name: hostile for name in FIELDS})


def _send(client, method: str, rule: str, path: dict, query: dict, form: dict, token: str | None, htmx: bool,
          persona: str) -> None:
    """One request; raises AssertionError on a 5xx or an error that escaped the app."""
    url = _ARG.sub(lambda m: quote(path[m.group("name")], safe=""), rule)
    query = {k: v for k, v in query.items() if v != ""}
    if query:
        url += "?" + urlencode(query)
    data = None
    if method != "GET":
        data = {**{k: v for k, v in form.items() if v != ""}, **({"csrf_token": token} if token else {})}
    try:
        response = client.open(url, method=method, data=data, headers={"HX-Request": "true"} if htmx else {})
    except Exception as exc:  # an error that escaped the app: a real server's raw 500 page
        raise AssertionError(f"{method} {url} form={data!r} as {persona} raised {exc!r}") from None
    assert response.status_code < 500, (
        f"{method} {url} form={data!r} as {persona}: {response.status_code} "
        f"{response.get_data(as_text=True)[:200]}")


def _poisoned(value: str, how: str, char: str) -> str:
    if how == "replace":
        return char
    middle = len(value) // 2
    return value[:middle] + char + value[middle:]


def _module_fields(app, rule: str, method: str) -> list[str]:
    for candidate in app.url_map.iter_rules():
        if candidate.rule == rule and method in (candidate.methods or ()):
            view = inspect.unwrap(app.view_functions[candidate.endpoint])
            return sorted(_names_in(Path(inspect.getmodule(view).__file__).read_text()))
    return []


def _fuzz_rule(app, client, world: dict, rule: str, method: str, persona: str) -> None:
    """The systematic pass, then EXAMPLES random hostile requests, to one
    rule (see the module doc). Raises AssertionError on the first failure."""
    _restore(world)
    auth = AuthActions(client)
    if persona == "anonymous":
        client.post("/logout", data={"csrf_token": auth.csrf_token("/login")})  # after /login examples
        token = auth.csrf_token("/login")  # the visitor's session has one too (register, log in)
    else:
        assert auth.login(world[persona].user_id, PASSWORD).status_code == 302
        token = auth.csrf_token("/settings")
    names = [m.group("name") for m in _ARG.finditer(rule)]
    known = {"user_id": world["member"].user_id, "code": world["code"], "coop_id": str(world["coop_id"])}
    real_path = {name: known.get(name) or _benign(name, world) or "fuzz" for name in names}
    fields = _module_fields(app, rule, method)
    for target, (how, char) in itertools.product([("path", n) for n in names] + [("field", n) for n in fields],
                                                 POISONS):
        kind, name = target
        path = dict(real_path)
        values = {n: _benign(n, world) for n in fields}
        if kind == "path":
            path[name] = _poisoned(path[name], how, char)
        else:
            values[name] = _poisoned(values[name] or "fuzz", how, char)
        if persona == "loner":
            _restore(world)
        _send(client, method, rule, path, values if method == "GET" else {}, values if method != "GET" else {},
              token, False, persona)
    args = {n: _path_value(m.group("conv"), n, world) for m in _ARG.finditer(rule) for n in [m.group("name")]}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    # A GET sends no form (``_send``): drawing one for it would only cost time.
    @given(path=st.fixed_dictionaries(args), query=_fields(), form=_fields() if method != "GET" else st.just({}),
           htmx=st.booleans())
    def check(path, query, form, htmx):
        if persona == "loner":
            _restore(world)  # in no coop again, so create is reachable
        _send(client, method, rule, path, query, form, token, htmx, persona)

    check()


@pytest.mark.parametrize("persona", ["anonymous", "admin", "loner"])
def test_every_page_answers_hostile_input_without_a_server_error(app, client, persona):
    """Every page rule and method (RULES), EXAMPLES examples each; all
    failures are collected and reported together."""
    world = _build_world()
    failures = []
    for rule, method in RULES:
        try:
            _fuzz_rule(app, client, world, rule, method, persona)
        except Exception as exc:  # noqa: BLE001 - collect every route's failure, report them together
            failures.append(f"{method} {rule} as {persona}: " + (str(exc).splitlines() or [repr(exc)])[0][:400])
    assert len(RULES) > 30
    assert not failures, f"{len(failures)} page routes failed:\n" + "\n".join(failures)
