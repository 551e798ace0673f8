"""Helpers for the mining tests: publish events into the real streams, run
the real consumer, and recompute rollups straight from the data file."""
from __future__ import annotations

import gzip
import json
import time
from collections import defaultdict
from pathlib import Path

from webapp.services import ingest

DATA_FILE = Path(__file__).resolve().parent.parent / "webapp" / "demo" / "mining-events-24h.jsonl.gz"
SATOSHI = "bc1p4czy33sddxh00ttyyqn38egknrrxad770sgh276u5ph73xx2vqyqc0mtt3"
# Miners of the shared day: SatoshiHunter, two with a disconnect, and the one
# whose rejected shares have an sdiff above their accepted best.
REJECTED_ABOVE_BEST = "bc1qz6afdpq8x2r0wzn3kvxmn3p79tnh3yv9r7l7k6"
SAMPLE_MINERS = (
    SATOSHI,
    "bc1qc0fet3ns9dnfvq5ktvm7kpqs2rs2qn2376ddtp",
    "bc1q8s8a5w86ltv7jekfwx4zkpxrxzvmt5sqhfksuc",
    REJECTED_ABOVE_BEST,
)


def xadd(redis, event: str, data: dict, ts: float | None = None, source: str = "test", **extra) -> str:
    """Publish one event as upstream does; returns the entry id."""
    fields = {"event": event, "ts": f"{time.time() if ts is None else ts:.6f}", "source": source,
              "data": json.dumps(data), **extra}
    return redis.xadd(f"mining:{event}", fields)


def drain(name: str = "test-consumer", **kwargs) -> ingest.IngestStats:
    """Run the real consumer until the streams are empty."""
    return ingest.Consumer(name=name, **kwargs).run(drain=True, max_retries=0)


def share(user: str, rig: str, sdiff: float, accepted: bool = True, **extra) -> dict:
    return {"user": user, "worker": f"{user}.{rig}", "diff": 4096, "sdiff": sdiff, "accepted": accepted, **extra}


def sample(user: str, rig: str, h1: float) -> dict:
    return {"user": user, "worker": f"{user}.{rig}", "hashrate_1m": h1, "hashrate_5m": h1, "hashrate_1h": h1,
            "hashrate_1d": h1}


_cache: dict[tuple, list[str]] = {}


def day_lines(users: tuple[str, ...] = SAMPLE_MINERS) -> list[str]:
    """Every line of the shared day that belongs to ``users`` (cached)."""
    key = tuple(users)
    if key not in _cache:
        wanted = set(users)
        with gzip.open(DATA_FILE, "rt") as fh:
            _cache[key] = [line for line in fh if json.loads(line)["data"].get("user") in wanted]
    return _cache[key]


def write_slice(path: Path, users: tuple[str, ...] = SAMPLE_MINERS) -> Path:
    """A .jsonl.gz file with the lines of ``users``."""
    with gzip.open(path, "wt") as fh:
        fh.writelines(day_lines(users))
    return path


def recompute(lines: list[str]) -> dict[str, dict]:
    """Rollups computed directly from envelope lines: per user accepted
    shares, rejected shares, best accepted sdiff, last accepted share ts, and
    per worker the hashrate_1h of its latest sample."""
    users: dict[str, dict] = defaultdict(lambda: {"total_shares": 0, "rejected_shares": 0, "best_difficulty": 0.0,
                                                  "last_share_ts": None, "workers": {}})
    latest_sample: dict[str, tuple[float, float]] = {}
    for line in lines:
        env = json.loads(line)
        data = env["data"]
        if "user" not in data:
            continue
        row = users[data["user"]]
        if env["event"] == "share_submitted":
            if data["accepted"]:
                row["total_shares"] += 1
                row["best_difficulty"] = max(row["best_difficulty"], data["sdiff"])
                row["last_share_ts"] = max(row["last_share_ts"] or 0, env["ts"])
            else:
                row["rejected_shares"] += 1
        elif env["event"] == "hashrate_update":
            previous = latest_sample.get(data["worker"])
            if previous is None or env["ts"] > previous[0]:
                latest_sample[data["worker"]] = (env["ts"], data["hashrate_1h"])
                row["workers"][data["worker"]] = data["hashrate_1h"]
    return dict(users)
