"""Helpers for socket tests: a websocket-client wrapper that reads JSON
messages and close codes, and the production server (gunicorn). The
threaded werkzeug server is ``builders.LiveServer`` (the ``live`` fixture)."""
from __future__ import annotations

import json
import struct
import tempfile
import time

import websocket

from .builders import free_port


class Client:
    """A socket client: ``recv_json()``, ``close_code()``; JSON or raw text."""

    def __init__(self, url: str, **options) -> None:
        options.setdefault("timeout", 5)
        self.ws = websocket.create_connection(url, **options)

    def send_json(self, message) -> None:
        self.ws.send(json.dumps(message))

    def recv_text(self, timeout: float = 5) -> str:
        self.ws.settimeout(timeout)
        frame = self.ws.recv_frame()  # raw frames: the server's messages fit in one frame
        opcode = frame.opcode
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionClosedBy(_close_code(frame.data))
        if opcode == websocket.ABNF.OPCODE_PONG:
            return self.recv_text(timeout)
        if opcode == websocket.ABNF.OPCODE_PING:
            try:
                self.ws.pong(frame.data)
            except OSError:
                pass  # the server already closed; its close frame is still to be read
            return self.recv_text(timeout)
        return frame.data.decode()

    def recv_json(self, timeout: float = 5) -> dict:
        return json.loads(self.recv_text(timeout))

    def recv_until(self, predicate, timeout: float = 5) -> dict:
        """The first JSON message for which ``predicate`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv_json(max(0.05, deadline - time.monotonic()))
            if predicate(message):
                return message

    def close_code(self, timeout: float = 5) -> int:
        """Read until the server closes; its close code."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.recv_text(max(0.05, deadline - time.monotonic()))
            except ConnectionClosedBy as closed:
                return closed.code

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


class ConnectionClosedBy(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _close_code(data: bytes) -> int:
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005



class Gunicorn:
    """The production server (gunicorn.conf.py: gevent workers) on a free
    port, against this run's database and Redis; ``stop()`` ends its process
    group."""

    def __init__(self, services: dict, **env: str) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        self.port = free_port()
        merged = dict(os.environ, DATABASE_URL=services["database_url"], REDIS_URL=services["redis_url"],
                      REDIS_NAMESPACE=services["namespace"], SECRET_KEY="test-secret", EMBEDDED_SCHEDULER="0",
                      BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY="2",
                      PUBLIC_BASE_URL=f"http://127.0.0.1:{self.port}")
        merged.update(env)
        root = Path(__file__).resolve().parent.parent
        # A file, not a pipe: nobody drains a pipe while tests run, and a full
        # one blocks the workers in their next log line.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                     cwd=root, env=merged, stdout=subprocess.DEVNULL, stderr=self.log,
                                     start_new_session=True)

    def log_tail(self, size: int = 2000) -> str:
        """The end of the servers' log (stderr)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-size:]

    def wait_ready(self, timeout: float = 30) -> Gunicorn:
        import socket

        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"gunicorn did not start: {self.log_tail()}") from exc
                time.sleep(0.1)

    def warm_up(self, timeout: float = 90) -> None:
        """Wait until both workers answer (they boot slowly on a busy machine)."""
        import urllib.request

        deadline = time.monotonic() + timeout
        answered = set()
        while len(answered) < 2 and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login", timeout=30) as response:
                    answered.add(response.headers.get("X-Worker-Pid", len(answered)))
            except OSError:
                time.sleep(0.5)

    def ws_url(self, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
