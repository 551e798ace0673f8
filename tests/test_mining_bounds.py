"""Numbers the pool reports stay within what is physically possible: ingest
dead-letters the rest with the reason, a block is stored whole and shown
clamped, and a bad value already stored never breaks a sum, a page or the
coop hashrate job."""
from __future__ import annotations

import gzip
import json
import re
import time

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, Notification, UserActivity, WorkerStatus
from webapp.services import bounds, mining

from .mining_support import DATA_FILE, drain, sample, share, xadd

HUGE = 1.79e308  # what the attack sent: finite, and two of them overflow SUM()


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
