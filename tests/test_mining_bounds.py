"""Numbers the pool reports stay within what is physically possible: ingest
dead-letters the rest with the reason, a block is stored whole and shown
clamped, and a bad value already stored never breaks a sum, a page or the
coop hashrate job."""
from __future__ import annotations

import gzip
import json
import logging
import re
import time

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import (
    Cooperative,
    CoopHashrateSample,
    MinerStats,
    MiningEvent,
    Notification,
    UserActivity,
    WorkerStatus,
    utcnow,
)
from webapp.services import bounds, coop_hashrate, coops, mining

from .mining_support import DATA_FILE, drain, sample, share, xadd

HUGE = 1.79e308  # what the attack sent: finite, and two of them overflow SUM()


def _strict_json(resp) -> dict:
    """The body parsed as strict JSON (no NaN/Infinity tokens)."""
    def refuse(token):
        raise AssertionError(f"{resp.request.path} answered the non-JSON number {token}")
    return json.loads(resp.get_data(as_text=True), parse_constant=refuse)


# ---- every numeric field of every event ------------------------------------------------

# (event, valid data, field, a value beyond its physical range)
BEYOND = [
    ("share_submitted", share("bc1qbound01", "r", 5.0), "sdiff", HUGE),
    ("share_submitted", share("bc1qbound01", "r", 5.0), "diff", 3e67),
    ("share_best_diff", {"user": "bc1qbound01", "worker": "bc1qbound01.r", "new_best": 5.0}, "new_best", 1e68),
    ("share_best_diff", {"user": "bc1qbound01", "worker": "bc1qbound01.r", "new_best": 5.0, "prev_best": 1.0},
     "prev_best", HUGE),
    ("hashrate_update", sample("bc1qbound01", "r", 5e11), "hashrate_1h", HUGE),
    ("hashrate_update", sample("bc1qbound01", "r", 5e11), "hashrate_1m", 2e21),
    ("hashrate_update", sample("bc1qbound01", "r", 5e11), "hashrate_5m", 10**40),  # an integer past the bound
    ("hashrate_update", sample("bc1qbound01", "r", 5e11), "hashrate_1d", HUGE),
    ("miner_connected", {"user": "bc1qbound01", "worker": "bc1qbound01.r", "initial_diff": 4096},
     "initial_diff", 1e70),
    ("miner_disconnected", {"user": "bc1qbound01", "worker": "bc1qbound01.r", "session_duration": 60.0},
     "session_duration", 2e9),  # a session that began before 2009
    ("new_block_network", {"height": 924501, "hash": "00" * 32, "diff": 1.49e14}, "height", 10**18),
    ("new_block_network", {"height": 924501, "hash": "00" * 32, "diff": 1.49e14}, "diff", HUGE),
]


def test_every_numeric_field_beyond_its_physical_range_is_dead_lettered_with_the_reason(app, redis):
    now = time.time()
    good = [(f"mining:{event}", xadd(redis, event, data, ts=now - 100 + i))
            for i, (event, data, _, _) in enumerate(BEYOND)]
    at_bound = ("mining:hashrate_update",
                xadd(redis, "hashrate_update", sample("bc1qbound02", "r", bounds.MAX_HASHRATE), ts=now))
    bad = {(f"mining:{event}", xadd(redis, event, {**data, name: value}, ts=now - 50 + i)): name
           for i, (event, data, name, value) in enumerate(BEYOND)}
    stats = drain()
    assert stats.dead_lettered == len(bad) == len(BEYOND)
    assert stats.inserted == len(good) + 1
    stored = {(stream, entry_id) for stream, entry_id in
              db.session.execute(sa.select(MiningEvent.stream, MiningEvent.entry_id))}
    assert stored == set(good) | {at_bound}
    letters = {(fields["dead_letter_stream"], fields["dead_letter_id"]): fields["dead_letter_error"]
               for _, fields in redis.xrange(mining.DEAD_LETTER_STREAM)}
    assert set(letters) == set(bad)
    for key, name in bad.items():
        assert letters[key].startswith(f"data.{name} must be a"), letters[key]
        assert "physically possible range" in letters[key], letters[key]
    assert db.session.get(WorkerStatus, "bc1qbound02.r").hashrate_1h == bounds.MAX_HASHRATE
    assert db.session.get(WorkerStatus, "bc1qbound01.r").hashrate_1h == 5e11  # the good sample only


_ENVELOPE = re.compile(rb'^\{"event":"([a-z_]+)","ts":([0-9.]+),"source":"([^"]*)","region":"[^"]*",'
                       rb'"data":(\{.*\})\}$')


@pytest.mark.slow
def test_the_whole_shared_day_passes_and_each_of_its_numbers_has_a_bound():
    """Every one of the 254,730 real events is accepted; and for the first
    event of each type, each numeric field set far beyond any real value is
    refused (so no number of the real data goes unbounded)."""
    now = time.time()
    first_of: dict[str, dict] = {}
    refused = []
    count = 0
    with gzip.open(DATA_FILE, "rb") as fh:
        for number, line in enumerate(fh):
            match = _ENVELOPE.match(line.rstrip(b"\n"))
            if match:  # the day's fixed shape; parsing it with json would triple the time
                event, ts, source, data = match.groups()
            else:
                env = json.loads(line)
                event, ts, source = env["event"].encode(), repr(env["ts"]).encode(), env["source"].encode()
                data = json.dumps(env["data"]).encode()
            fields = {b"event": event, b"ts": ts, b"source": source, b"data": data}
            stream = "mining:" + event.decode()
            try:
                mining.parse_entry(stream, f"{number + 1}-0", fields, now=now)
            except mining.MalformedEvent as exc:
                refused.append((number, str(exc)))
            first_of.setdefault(stream, fields)
            count += 1
    assert count == 254_730 and refused == []
    assert len(first_of) == 6  # every type but block_found, which the day has none of

    checked = set()
    for stream, fields in first_of.items():
        data = json.loads(fields[b"data"])
        for name, value in data.items():
            if type(value) in (int, float):
                absurd = {**data, name: 1e300 if type(value) is float else 10**300}
                with pytest.raises(mining.MalformedEvent, match=f"data.{name} must be"):
                    mining.parse_entry(stream, "1-0", {**fields, b"data": json.dumps(absurd).encode()}, now=now)
                checked.add((stream.split(":")[1], name))
    assert checked == {
        ("share_submitted", "diff"), ("share_submitted", "sdiff"), ("share_best_diff", "new_best"),
        ("share_best_diff", "prev_best"), ("hashrate_update", "hashrate_1m"), ("hashrate_update", "hashrate_5m"),
        ("hashrate_update", "hashrate_1h"), ("hashrate_update", "hashrate_1d"), ("miner_connected", "initial_diff"),
        ("miner_disconnected", "session_duration"), ("new_block_network", "height"), ("new_block_network", "diff"),
    }


# ---- a block is stored whole and shown clamped -------------------------------------------


def test_a_block_with_a_huge_height_and_a_long_hash_is_stored_whole_and_shown_clamped(app, redis, make_user):
    finder = make_user().user_id
    now = time.time()
    wild = {"user": finder, "worker": f"{finder}.lucky", "height": 10**250, "hash": "00" * 5000,
            "sdiff": 1e300, "reward": 3.125}
    odd = {"user": finder, "height": 924501, "hash": "<b>not a hash</b>", "diff": 1.49e14}
    wild_id = xadd(redis, "block_found", wild, ts=now - 2)
    xadd(redis, "block_found", odd, ts=now - 1)
    stats = drain()
    assert stats.dead_lettered == 0 and stats.inserted == 2
    assert not redis.exists(mining.DEAD_LETTER_STREAM)

    stored = db.session.scalars(sa.select(MiningEvent).order_by(MiningEvent.ts)).all()
    assert stored[0].entry_id == wild_id
    # What the pool said is the record (jsonb keeps 1e300 as the exact numeral).
    assert {k: v for k, v in stored[0].data.items() if k != "sdiff"} == {k: v for k, v in wild.items() if k != "sdiff"}
    assert float(stored[0].data["sdiff"]) == 1e300
    assert stored[1].data == odd
    assert db.session.get(MinerStats, finder).blocks_found == 2

    notes = db.session.scalars(sa.select(Notification).where(Notification.user_id == finder)
                               .order_by(Notification.id)).all()
    assert [n.title for n in notes] == ["You found a block!", "You found block 924,501!"]
    assert notes[0].body == "lucky solved a block for the network. Congratulations!"
    assert {k: v for k, v in notes[0].data.items() if k != "at"} == {
        "hash": "0" * 64 + "\u2026", "worker": f"{finder}.lucky"}
    assert {k: v for k, v in notes[1].data.items() if k != "at"} == {"height": 924501, "difficulty": 1.49e14}
    for note in notes:
        assert len(note.title) <= 200 and len(json.dumps(note.data)) <= 8192
    acts = db.session.scalars(sa.select(UserActivity).where(UserActivity.user_id == finder)
                              .order_by(UserActivity.id)).all()
    assert [(a.title, a.data) for a in acts] == [(n.title, n.data) for n in notes]


@pytest.mark.parametrize("value, shown", [
    ("00000000000000000001f8a2" + "0" * 40, "00000000000000000001f8a2" + "0" * 40),
    ("ab" * 40, "ab" * 32 + "\u2026"),
    ("00ff<script>", "00ff\u2026"),
    ("<script>", None),
    ("", None),
    (12345, None),
])
def test_display_hash_keeps_at_most_64_leading_hex_digits(value, shown):
    assert mining.display_hash(value) == shown


# ---- a bad value already stored --------------------------------------------------------------


def _bad_rows(user_id: str) -> None:
    """Rows no ingest would write today (from before the bounds, or by hand)."""
    now = utcnow()
    rows = [("huge-1", HUGE), ("huge-2", HUGE), ("inf", float("inf")), ("nan", float("nan")), ("neg", -5.0),
            ("fine", 2e12)]
    for name, rate in rows:
        db.session.add(WorkerStatus(worker=f"{user_id}.{name}", user_id=user_id, is_online=True,
                                    last_sample_at=now, last_seen_at=now, hashrate_1h=rate))
    db.session.add(MinerStats(user_id=user_id, total_shares=3, best_difficulty=float("inf"), updated_at=now))
    db.session.commit()


def test_a_stored_absurd_hashrate_breaks_no_route_and_not_the_aggregation(app, client, runner, auth,
                                                                          auth_headers, make_user):
    admin, member, other_admin = make_user(), make_user(), make_user()
    coop = coops.create(admin, name="Shelf Miners", description="")
    coops.join(member, invite_code=coop.invite_code)
    other = coops.create(other_admin, name="Garage Crew", description="")
    coop_id, other_id = coop.id, other.id
    _bad_rows(member.user_id)
    now = utcnow()
    for user, rate in ((admin, 1e12), (other_admin, 3e12)):
        db.session.add(WorkerStatus(worker=f"{user.user_id}.rig", user_id=user.user_id, is_online=True,
                                    last_sample_at=now, last_seen_at=now, hashrate_1h=rate))
    db.session.commit()

    result = runner.invoke(args=["coops", "aggregate"])
    assert result.exit_code == 0, result.output
    assert "updated 2 cooperative(s)" in result.output
    db.session.expire_all()
    assert db.session.get(Cooperative, coop_id).total_hashrate == pytest.approx(3e12)  # 1e12 + the fine 2e12
    assert db.session.get(Cooperative, other_id).total_hashrate == pytest.approx(3e12)

    stats = _strict_json(client.get(f"/api/public/miners/{member.user_id}/stats"))
    assert (stats["hashrate_1h"], stats["workers_online"], stats["best_difficulty"]) == (2e12, 6, 0.0)
    assert client.get(f"/api/public/miners/{member.user_id}").status_code == 200
    headers = auth_headers(member)
    for path in ("", "/members", "/hashrate", "/stats"):
        resp = client.get(f"/api/coops/{coop_id}{path}", headers=headers)
        assert resp.status_code == 200, (path, resp.status_code)
        _strict_json(resp)
    members = _strict_json(client.get(f"/api/coops/{coop_id}/members", headers=headers))["members"]
    assert {m["user_id"]: m["hashrate"] for m in members} == {admin.user_id: 1e12, member.user_id: 2e12}
    assert _strict_json(client.get(f"/api/coops/{coop_id}/stats", headers=headers))["best_difficulty"] == 0.0
    assert client.get(f"/miners/{member.user_id}").status_code == 200
    auth.login(member.user_id)
    assert client.get("/coop").status_code == 200


def test_one_coop_failing_to_aggregate_leaves_the_others_updated(app, make_user, caplog):
    """Whatever else makes the grouped statement fail, each coop is then
    computed on its own: the failing one keeps its total and is logged."""
    ids = []
    for name in ("Alpha", "Bravo", "Charlie"):
        admin = make_user()
        ids.append(coops.create(admin, name=name, description="").id)
        now = utcnow()
        db.session.add(WorkerStatus(worker=f"{admin.user_id}.rig", user_id=admin.user_id, is_online=True,
                                    last_sample_at=now, last_seen_at=now, hashrate_1h=1e12))
    refused = ids[1]
    db.session.execute(sa.update(Cooperative).where(Cooperative.id == refused).values(total_hashrate=42.0))
    db.session.execute(sa.text(f"""
        CREATE OR REPLACE FUNCTION test_refuse_sample() RETURNS trigger AS $$
        BEGIN IF NEW.cooperative_id = {refused} THEN RAISE EXCEPTION 'sample refused for the test'; END IF;
        RETURN NEW; END $$ LANGUAGE plpgsql"""))
    db.session.execute(sa.text("CREATE TRIGGER test_refuse BEFORE INSERT ON coop_hashrate_samples "
                               "FOR EACH ROW EXECUTE FUNCTION test_refuse_sample()"))
    db.session.commit()
    try:
        with caplog.at_level(logging.ERROR):
            updated = coop_hashrate.aggregate_all()
    finally:
        db.session.rollback()
        db.session.execute(sa.text("DROP TRIGGER IF EXISTS test_refuse ON coop_hashrate_samples"))
        db.session.execute(sa.text("DROP FUNCTION IF EXISTS test_refuse_sample()"))
        db.session.commit()
    assert updated == 2
    db.session.expire_all()
    totals = {c.id: c.total_hashrate for c in db.session.scalars(sa.select(Cooperative))}
    assert totals == {ids[0]: pytest.approx(1e12), refused: 42.0, ids[2]: pytest.approx(1e12)}
    assert sorted(db.session.scalars(sa.select(CoopHashrateSample.cooperative_id))) == [ids[0], ids[2]]
    assert any(f"coop {refused} failed" in r.getMessage() for r in caplog.records)
