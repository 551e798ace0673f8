"""Production web server: ``gunicorn -c gunicorn.conf.py wsgi:app``.

gevent workers: a socket costs a few greenlets instead of OS threads
(DESIGN.md "Serving sockets": gthread needs two threads per socket and died
near 19,000). Each worker process runs one Redis listener for its sockets;
workers and counts were chosen with benchmarks/push_latency.py
(docs/PERFORMANCE.md). The app is NOT preloaded: gevent must monkey-patch
before the app creates its threads, locks and Redis/PostgreSQL connections.

Settings from the environment: BIND (127.0.0.1:8000), WEB_CONCURRENCY
(worker processes, default 2 = the cores of the reference machine),
WORKER_CONNECTIONS (sockets + requests per worker, default 10000).
"""
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
preload_app = False
timeout = 30  # heartbeat of a worker's event loop, not a request limit (sockets live on)
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for stdout; the app logs requests itself (ACCESS_LOG)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# gunicorn's control socket (~/.gunicorn/gunicorn.ctl) would be shared by
# every server of this user on the host; we don't use `gunicornc`.
control_socket_disable = True


def post_worker_init(worker):
    """Freeze what the loaded app holds out of the garbage collector's reach.

    A full collection walks every tracked object: with the app's ~190,000
    (modules, SQLAlchemy metadata, templates) plus 500 sockets' ~87,000 it
    paused a worker 80-185 ms, and every socket of that worker waited
    (benchmarks/chat.py, docs/PERFORMANCE.md). Frozen, they are never
    walked again: 16-65 ms. They live as long as the worker anyway.
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    import gc

    gc.collect()
    gc.freeze()
