"""Redis Streams in and out: the ingest consumer (``consumer``, the loop
behind ``flask ingest``), the trimming of acknowledged entries (``trim``)
and the replay publisher (``replay``, ``flask replay``).

This package re-exports the names of the former ``services/ingest.py``, so
callers keep writing ``ingest.Consumer`` and the like.
"""
from __future__ import annotations

from .. import mining
from .consumer import TRANSIENT_ERRORS, Batch, Consumer, Entry, IngestStats, default_consumer_name
from .consumer import _s as _s  # tests decode entries with it
from .replay import ReplayStats, count_lines, entries_of_file, publish_file
from .trim import trim_acknowledged, trim_bound

__all__ = [
    "TRANSIENT_ERRORS", "Batch", "Consumer", "Entry", "IngestStats", "ReplayStats", "default_consumer_name",
    "count_lines", "entries_of_file", "mining", "publish_file", "trim_acknowledged", "trim_bound",
]
