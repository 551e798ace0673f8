"""``flask demo``: the 60 miners and a slice of the shared day, idempotent."""
from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import MinerStats, MiningEvent, Notification, User, UserActivity
from webapp.services import accounts, demo

from .mining_support import SATOSHI

LIMIT = 4000


def _counts() -> dict[str, int]:
    def count(model) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))

    return {"users": count(User), "events": count(MiningEvent), "miners": count(MinerStats),
            "notifications": count(Notification), "activities": count(UserActivity)}


@pytest.mark.slow
def test_demo_builds_the_world_once_and_rerunning_duplicates_nothing(app, runner):
    result = runner.invoke(args=["demo", "--limit", str(LIMIT), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "60 miners created" in result.output
    first = _counts()
    assert first["users"] == 60 and first["events"] == LIMIT
    names = {m["user_id"]: m for m in json.loads(demo.MINERS_FILE.read_text())}
    satoshi = db.session.get(User, SATOSHI)
    assert satoshi.display_name == "SatoshiHunter" and satoshi.country_code == names[SATOSHI]["country_code"]
    assert accounts.authenticate(user_id=SATOSHI, password="demo1234").user_id == SATOSHI
    # Shifted to now: the newest stored event is (about) now.
    newest = db.session.scalar(sa.select(sa.func.max(MiningEvent.ts)))
    assert abs(newest.timestamp() - time.time()) < 120
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.subtype == "personal_best")) > 0

    again = runner.invoke(args=["demo", "--limit", str(LIMIT), "--quiet"])
    assert again.exit_code == 0, again.output
    assert "already exist" in again.output and "not replaying" in again.output
    db.session.expire_all()
    assert _counts() == first


def test_demo_reset_loads_the_day_again_without_duplicates(app, runner):
    assert runner.invoke(args=["demo", "--limit", "500", "--quiet"]).exit_code == 0
    first = _counts()
    result = runner.invoke(args=["demo", "--limit", "500", "--quiet", "--reset"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert _counts() == first


def test_the_demo_world_has_one_platform_admin_satoshihunter(app):
    assert demo.create_miners() == 60
    admins = db.session.scalars(sa.select(User.user_id).where(User.is_admin.is_(True))).all()
    assert admins == [SATOSHI] == [demo.DEMO_PLATFORM_ADMIN]
    db.session.execute(sa.update(User).values(is_admin=False))  # a demo world from before: granted on the next run
    db.session.commit()
    assert demo.create_miners() == 0
    assert db.session.get(User, SATOSHI).is_admin


def test_make_run_takes_the_port_from_port():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for args, port in (([], "5000"), (["PORT=5001"], "5001")):
        plan = subprocess.run(["make", "-n", "run", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        assert f"flask demo --serve --host 127.0.0.1 --port {port}\n" in plan
