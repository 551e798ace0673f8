"""The embedded default driven as ``make run`` drives it: the source tree
copied to a temporary folder (its ``instance/`` sits next to the copied
``webapp/``, so the developer's own database is never touched), each step
its own ``flask`` process with a clean environment (no DATABASE_URL, no
REDIS_URL: SQLite and the in-process Redis stand-in)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).with_name("flask"))


def clean_env() -> dict[str, str]:
    """The caller's environment without any of the app's settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {name: os.environ[name] for name in keep if name in os.environ} | {"FLASK_APP": "wsgi"}


def copy_source_tree(tmp_path: Path) -> Path:
    """What ``make run`` serves (``webapp``, ``jobs``, ``migrations``,
    ``wsgi.py``) copied to ``tmp_path / "app"``; returns that folder."""
    tree = tmp_path / "app"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("webapp", "jobs", "migrations"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=ignore)
    shutil.copy(ROOT / "wsgi.py", tree / "wsgi.py")
    return tree


def run_flask(tree: Path, *args: str) -> subprocess.CompletedProcess:
    """``flask ARGS`` in ``tree`` with ``clean_env()``, output captured as text
    (up to 300 s)."""
    return subprocess.run([FLASK, *args], cwd=tree, env=clean_env(), capture_output=True, text=True, timeout=300)


def stop_server(server: subprocess.Popen, timeout: float) -> None:
    """SIGTERM ``server``, SIGKILL when it has not ended after ``timeout`` s."""
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
