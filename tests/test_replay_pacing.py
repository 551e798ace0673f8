"""``flask replay --speed``: a replay paced by the events' ``ts``, against the
real Redis Streams."""
from __future__ import annotations

import json
import threading
import time

import pytest

from webapp.services import ingest, mining

from .mining_support import share


def _write(path, offsets: list[float], base: float = 1763078400.0) -> None:
    path.write_text("".join(
        json.dumps({"event": "share_submitted", "ts": base + offset, "source": "hosted", "region": "eu",
                    "data": share("bc1qpaced0001", "rig", 100.0 + i)}) + "\n"
        for i, offset in enumerate(offsets)))


def _stamps(redis) -> list[float]:
    return [float(fields["ts"]) for _, fields in redis.xrange(mining.stream_name("share_submitted"))]


def test_paced_replay_follows_ts_at_speed_and_stamps_the_publish_time(app, redis, tmp_path):
    path = tmp_path / "paced.jsonl"
    _write(path, [0.0, 0.0, 4.0, 10.0])  # 10 s of log at 20x = 0.5 s
    started = time.time()
    stats = ingest.publish_file(path, shift_to_now=True, speed=20, progress=False)
    assert stats.published == 4
    assert 0.45 <= stats.seconds < 2.0
    stamps = _stamps(redis)
    # Stamped as due: start + offset / speed, so never ahead of the clock.
    assert [round(s - stamps[0], 2) for s in stamps] == [0.0, 0.0, 0.2, 0.5]
    assert started - 0.1 <= stamps[0] <= started + 0.5
    assert stamps[-1] <= time.time()


def test_paced_replay_without_shift_keeps_the_original_ts(app, redis, tmp_path):
    path = tmp_path / "paced.jsonl"
    _write(path, [0.0, 1.0, 2.0])
    stats = ingest.publish_file(path, speed=10, progress=False)
    assert stats.published == 3 and stats.seconds >= 0.19
    assert _stamps(redis) == [1763078400.0, 1763078401.0, 1763078402.0]


def test_paced_replay_stops_early_on_the_stop_event(app, redis, tmp_path):
    path = tmp_path / "paced.jsonl"
    _write(path, [0.0, 1.0, 3600.0])  # the last one is due after 6 minutes at 10x
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    stats = ingest.publish_file(path, shift_to_now=True, speed=10, progress=False, stop=stop)
    assert stats.published == 2 and stats.seconds < 5
    assert len(_stamps(redis)) == 2


def test_replay_cli_speed_option_and_its_validation(app, runner, redis, tmp_path):
    path = tmp_path / "paced.jsonl"
    _write(path, [0.0, 2.0])
    result = runner.invoke(args=["replay", str(path), "--shift-to-now", "--speed", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "published 2 events at 20x, stamped as published" in result.output
    assert len(_stamps(redis)) == 2
    result = runner.invoke(args=["replay", str(path), "--speed", "0"])
    assert result.exit_code == 2 and "--speed" in result.output
    with pytest.raises(ValueError):
        ingest.publish_file(path, speed=-1, progress=False)
