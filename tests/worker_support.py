"""Real ``flask worker`` processes for the fault tests: start one on this
run's database and Redis, find its scheduler child, kill it (``builders.wait_for``
waits for what follows)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).with_name("flask"))


def worker_env(services: dict, **settings: str) -> dict[str, str]:
    """The environment of a ``flask`` process on this run's PostgreSQL and Redis."""
    return dict(os.environ, FLASK_APP="wsgi", DATABASE_URL=services["database_url"], REDIS_URL=services["redis_url"],
                REDIS_NAMESPACE=services["namespace"], SECRET_KEY="test-secret", EMBEDDED_SCHEDULER="0",
                LOG_FORMAT="text", **settings)


def start_worker(services: dict, log: Path, *args: str, **settings: str) -> subprocess.Popen:
    """``flask worker ARGS`` in its own session (so a test can kill its whole
    group at the end); its output goes to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([FLASK, "worker", *args], cwd=ROOT, env=worker_env(services, **settings),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found



def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a worker's whole process group — its scheduler child too, even
    orphaned, since a child keeps the group — and reap the worker."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
