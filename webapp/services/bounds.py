"""Physically possible ranges of the numbers the pool reports, and the
helpers that keep a stored value outside them from reaching a sum or a page.

Ingest (``mining.parse_entry``) dead-letters an event whose number lies
outside its range; the readers below treat a stored value outside it (a row
from before these bounds, or written by hand) as no value at all, so one bad
row can never overflow a ``SUM()`` or put ``Infinity`` into a JSON answer.

Sources of the bounds (each generous by orders of magnitude over real data;
the shared day's largest values are given for comparison):

* ``MAX_HASHRATE`` = 1e21 H/s for one worker: the whole Bitcoin network
  hashes about 1e21 H/s (1 ZH/s) in 2026 and no worker can outrun the
  network. Shared day: 1.2e14 H/s (a worker's ``hashrate_1m``).
* ``MAX_DIFFICULTY`` = 0xFFFF * 2**208 ~= 2.7e67: a difficulty is
  ``difficulty-1 target / target`` (for a share, ``/ hash``); the smallest
  possible target or hash is 1, so no difficulty (share, pool-assigned or
  network) can exceed the difficulty-1 target itself (Bitcoin Core
  ``powLimit`` for mainnet, nBits 0x1d00ffff). Shared day: 6.8e10
  (``sdiff``), 1.49e14 (network ``diff``).
* ``MAX_HEIGHT`` = 10,000,000 blocks: at the 10-minute target the chain
  grows 52,560 blocks a year, so 10 million is reached about 190 years after
  2009; testnet3, whose difficulty resets made blocks fast, was near 4.8
  million in 2025. Shared day: 924,655.
* Session durations: at most ``ts - MIN_TS`` seconds (no session started
  before the Bitcoin network existed, 2009-01-01).
* Times (``MIN_TS``, ``MAX_FUTURE_SECONDS``): between 2009-01-01 and one
  day ahead of the receiving clock.

Counts and heights are non-negative integers; every number is finite and
>= 0 (``mining.parse_entry`` has the type rules).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import case

MAX_HASHRATE = 1e21  # H/s, one worker
MAX_DIFFICULTY = float(0xFFFF * 2**208)  # ~2.6959535291011309e67
MAX_HEIGHT = 10_000_000
MIN_TS = 1230768000.0  # 2009-01-01T00:00:00Z, before the first Bitcoin block
MAX_FUTURE_SECONDS = 24 * 3600  # a clock a day ahead is a bad entry, not a time


def within(value: Any, upper: float) -> bool:
    """True for an ``int`` or ``float`` (not a bool) with ``0 <= value <=
    upper``; False for anything else, NaN and infinities included."""
    return (type(value) is float or type(value) is int) and 0 <= value <= upper


def usable(value: Any, upper: float) -> float:
    """``value`` as a float when it lies in ``[0, upper]``, else 0.0 (what a
    reader shows for a stored value no machine could have reported)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= upper:
        return float(value)
    return 0.0


def usable_sql(column, upper: float):
    """SQL for ``usable``: the column where ``0 <= column <= upper``, else 0.

    Portable to PostgreSQL and SQLite. PostgreSQL sorts NaN above every
    number, so NaN and both infinities fall to 0, as does NULL; a ``SUM()``
    of it over n rows is at most ``n * upper`` and never overflows."""
    return case((column.between(0, upper), column), else_=0.0)
