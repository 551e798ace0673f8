"""The mining and ingest services are packages of small modules that keep
their old names, and the demo world lives apart from the production services."""
from __future__ import annotations

from pathlib import Path

import pytest

from webapp.services import coop_hashrate, demo, ingest, mining

SERVICES = Path(mining.__file__).parent.parent


@pytest.mark.parametrize("package", ["mining", "ingest"])
def test_split_services_are_packages_of_modules_under_450_lines(package):
    modules = sorted((SERVICES / package).glob("*.py"))
    assert len(modules) >= 3 and not (SERVICES / f"{package}.py").exists()
    sizes = {path.name: len(path.read_text().splitlines()) for path in modules}
    assert max(sizes.values()) <= 450, sizes


@pytest.mark.parametrize("name", ["parse_entry", "MalformedEvent", "MiningEventIn", "ingest_batch", "BatchResult",
                                  "sweep_offline_workers", "purge_old_events", "workers_of", "has_events",
                                  "recent_personal_bests", "personal_best_history", "STREAMS", "EVENTS",
                                  "DEAD_LETTER_STREAM", "stream_name", "format_difficulty", "format_hashrate",
                                  "worker_label", "display_hash", "block_display"])
def test_mining_keeps_its_names(name):
    assert getattr(mining, name) is not None


@pytest.mark.parametrize("name", ["Consumer", "IngestStats", "publish_file", "ReplayStats", "trim_acknowledged",
                                  "trim_bound", "TRANSIENT_ERRORS", "mining", "_s"])
def test_ingest_keeps_its_names(name):
    assert getattr(ingest, name) is not None


def test_the_demo_world_lives_in_services_demo():
    assert callable(demo.reset_mining_data) and callable(demo.backfill_history)
    assert not hasattr(mining, "reset_mining_data") and not hasattr(coop_hashrate, "backfill_history")
