"""The embedded default's Redis stand-in, shared with the other processes.

Without ``REDIS_URL`` every process has an in-process fakeredis server of its
own, so a ``flask notify`` (or ``flask replay``, ``flask coops remove`` ...)
run beside ``make run`` used to publish into a server nobody listens to. The
serving process (``flask demo --serve``, what ``make run`` starts) therefore
also serves its stand-in on a loopback port with fakeredis' own TCP server
(``serve``) and writes that port to ``instance/embedded-redis.json``; any
other process of the embedded default finds the file (``attached_url``) and
connects to that port with the ordinary redis client, so its pushes, stream
entries and cache drops reach the server's sockets, consumer and pages. The
file names the serving process's pid: a file left by a process that died is
ignored. Only 127.0.0.1 is bound; anyone who can reach it can already read
the SQLite file beside it.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
from pathlib import Path

from .config import INSTANCE_DIR

log = logging.getLogger(__name__)

PORT_FILE = INSTANCE_DIR / "embedded-redis.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def attached_url(path: Path = PORT_FILE) -> str | None:
    """``redis://127.0.0.1:<port>/0`` of a running serving process's stand-in,
    or None (no file, its process is gone, or nothing answers the port)."""
    try:
        info = json.loads(path.read_text())
        pid, port = int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or not _alive(pid):
        return None
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return None
    return f"redis://127.0.0.1:{port}/0"


def serve(fake_server, path: Path = PORT_FILE) -> int:
    """Serve ``fake_server`` (this process's ``fakeredis.FakeServer``) on a
    free loopback port on a daemon thread, write the port file and remove it
    at exit. Returns the port."""
    from fakeredis import TcpFakeServer

    tcp = TcpFakeServer(("127.0.0.1", 0))
    tcp.daemon_threads = True  # a CLI client that hangs never holds the server's exit
    tcp.fake_server = fake_server  # the same data, channels and streams as this process
    port = tcp.server_address[1]
    threading.Thread(target=tcp.serve_forever, name="embedded-redis", daemon=True).start()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "port": port}))

    def remove() -> None:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    atexit.register(remove)
    log.info("embedded Redis stand-in shared on 127.0.0.1:%d (%s)", port, path)
    return port
