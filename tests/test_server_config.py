"""gunicorn.conf.py's worker hooks, run in this process."""
from __future__ import annotations

import gc
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_worker_takes_what_the_loaded_app_holds_out_of_the_collectors_walk():
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    held = ["with the app"]  # a list: always tracked by the collector
    assert any(o is held for o in gc.get_objects())
    try:
        hooks["post_worker_init"](None)
        assert not any(o is held for o in gc.get_objects())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    made_after = ["after"]
    assert any(o is made_after for o in gc.get_objects())
