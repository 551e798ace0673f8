"""Configuration read from the environment.

Every setting has an embedded default so that a fresh clone runs with no
services: SQLite under ``instance/`` and an in-process Redis stand-in
(fakeredis) with RQ jobs executed inline. Production sets ``DATABASE_URL``
(PostgreSQL) and ``REDIS_URL``. The README's settings table lists them all.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from .jsonprovider import load_stored_json

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def normalise_database_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to the psycopg 3 driver URL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one kept in ``instance/`` so that
    sessions and signed links survive a restart of the embedded default."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


class Config:
    """Settings as class attributes; ``create_app(test_config)`` overrides them."""

    def __init__(self) -> None:
        database_url = os.environ.get("DATABASE_URL", "")
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(database_url) or (
            f"sqlite:///{INSTANCE_DIR / 'webapp.db'}"
        )
        # Where miners point their hardware (the onboarding card on the home page).
        self.POOL_STRATUM_URL = os.environ.get("POOL_STRATUM_URL", "stratum+tcp://solo.pool.example:3333")
        # Empty REDIS_URL selects the in-process stand-in (embedded default).
        self.REDIS_URL = os.environ.get("REDIS_URL", "")
        # Prefix for pub/sub channels and cache keys, so that several
        # deployments (or test runs) can share one Redis server.
        self.REDIS_NAMESPACE = os.environ.get("REDIS_NAMESPACE", "")
        self.REDIS_MAX_CONNECTIONS = _int("REDIS_MAX_CONNECTIONS", 50)  # per client, per process
        self.SECRET_KEY = _secret_key()
        self.SERVER_NAME = os.environ.get("SERVER_NAME") or None
        self.PREFERRED_URL_SCHEME = os.environ.get("PREFERRED_URL_SCHEME", "http")
        # Absolute base for links in e-mails and for the socket Origin check
        # when SERVER_NAME is unset.
        self.PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

        self.API_TOKEN_TTL = _int("API_TOKEN_TTL", 30 * 24 * 3600)  # seconds
        self.SERVICE_TOKEN = os.environ.get("SERVICE_TOKEN", "")
        self.MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 64 * 1024)

        self.LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")  # "json" in production
        self.ACCESS_LOG = _bool("ACCESS_LOG", True)
        # Behind a reverse proxy that sets X-Forwarded-For/-Proto/-Host.
        self.PROXY_FIX = _bool("PROXY_FIX", False)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        # Server-side login sessions (webapp/services/sessions.py): a session
        # unused this many days, or opened this many days ago, is over.
        self.AUTH_SESSION_IDLE_DAYS = _int("AUTH_SESSION_IDLE_DAYS", 30)
        self.AUTH_SESSION_MAX_DAYS = _int("AUTH_SESSION_MAX_DAYS", 365)
        self.REMEMBER_COOKIE_DURATION = timedelta(days=self.AUTH_SESSION_MAX_DAYS)
        # Seconds a user's bearer-token revocation state (epoch, denylisted
        # token ids) stays cached in Redis before it is read again from the
        # database (services/accounts.py); revocations update it at once.
        self.AUTH_CACHE_TTL = _int("AUTH_CACHE_TTL", 300)
        # Seconds a user's cached unread count and newest page
        # (services/notification_cache.py) live in Redis without a change:
        # bounds a stale answer only if a process dies between a commit and
        # its cache write.
        self.NOTIFICATION_CACHE_TTL = _int("NOTIFICATION_CACHE_TTL", 300)
        # The same bound for the anonymous public profile (services/profile_cache.py).
        self.PROFILE_CACHE_TTL = _int("PROFILE_CACHE_TTL", 300)
        # CSRF is checked in a before_request hook for cookie-authenticated
        # requests only; bearer-token requests are not CSRF-prone.
        self.WTF_CSRF_CHECK_DEFAULT = False
        self.WTF_CSRF_TIME_LIMIT = None

        # No pre-ping: it costs a round trip (SELECT 1) on every checkout,
        # i.e. every request (docs/PERFORMANCE.md). Connections are replaced
        # after DB_POOL_RECYCLE seconds instead (below idle timeouts of
        # proxies and firewalls); a connection the server closed fails one
        # request and the pool drops it (and, on a disconnect, every older one).
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": _bool("DB_POOL_PRE_PING", False),
            "pool_recycle": _int("DB_POOL_RECYCLE", 1800),
            # JSON columns decoded by orjson where it reads the same value as json.
            "json_deserializer": load_stored_json,
        }
        if not self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            # 10 kept + 5 overflow (the same 15 at most as SQLAlchemy's 5 + 10):
            # a gevent worker serves ~10 requests at once, and an overflow
            # connection is closed when it is returned, so with 5 kept every
            # burst opened and closed connections (psycopg's connect was 5 %
            # of a worker's samples under wrk -c10, docs/PERFORMANCE.md).
            self.SQLALCHEMY_ENGINE_OPTIONS["pool_size"] = _int("DB_POOL_SIZE", 10)
            self.SQLALCHEMY_ENGINE_OPTIONS["max_overflow"] = _int("DB_MAX_OVERFLOW", 5)
            # How long a request or socket message waits for a connection
            # before it is refused with 503 ``unavailable`` (an overload).
            self.SQLALCHEMY_ENGINE_OPTIONS["pool_timeout"] = _int("DB_POOL_TIMEOUT", 30)

        self.RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
        # webapp+redis: extensions.OneTripRedisStorage (one round trip per limited request).
        self.RATELIMIT_STORAGE_URI = f"webapp+{self.REDIS_URL}" if self.REDIS_URL.startswith("redis") else (
            self.REDIS_URL or "memory://")
        self.RATELIMIT_HEADERS_ENABLED = True
        # Per client IP on register / token / login (flood and guessing guard).
        self.AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per minute")
        # Per client IP on the public profile endpoints (15, 16).
        self.PUBLIC_RATE_LIMIT = os.environ.get("PUBLIC_RATE_LIMIT", "120 per minute")
        # Failed invite-code lookups per user, per client IP (IPv6: per /64),
        # and across the platform (past it typed codes pause and admins are
        # alarmed; invite links keep working). docs/COOPS.md has the arithmetic.
        self.INVITE_CODE_FAILURE_LIMIT = os.environ.get("INVITE_CODE_FAILURE_LIMIT", "10 per hour")
        self.INVITE_CODE_IP_FAILURE_LIMIT = os.environ.get("INVITE_CODE_IP_FAILURE_LIMIT", "30 per hour")
        self.INVITE_CODE_GLOBAL_FAILURE_LIMIT = os.environ.get("INVITE_CODE_GLOBAL_FAILURE_LIMIT", "200 per hour")

        self.MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
        self.MAIL_PORT = _int("MAIL_PORT", 25)
        self.MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Solo Mining <noreply@localhost>")
        # With no MAIL_SERVER, mail is written to this folder instead of sent.
        self.MAIL_OUTBOX_DIR = os.environ.get("MAIL_OUTBOX_DIR", str(INSTANCE_DIR / "outbox"))
        # Seconds an SMTP connect or reply may take (smtplib has no timeout of its own).
        self.MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 30)

        self.NOTIFICATION_RETENTION_DAYS = _int("NOTIFICATION_RETENTION_DAYS", 90)
        self.EMAIL_RETRY_INTERVALS = [int(x) for x in os.environ.get("EMAIL_RETRY_INTERVALS", "30,120,600").split(",")]  # seconds between e-mail retries
        # E-mail leases (docs/NOTIFICATIONS.md): a claimed delivery belongs to its sender for
        # EMAIL_LEASE_SECONDS (keep it well above the job timeout, 60 s, and MAIL_TIMEOUT);
        # then the sweep (every EMAIL_SWEEP_INTERVAL s) reclaims it. A pending delivery no job
        # has claimed for EMAIL_REQUEUE_AFTER s is re-enqueued. At most EMAIL_MAX_ATTEMPTS sends.
        self.EMAIL_LEASE_SECONDS = _int("EMAIL_LEASE_SECONDS", 300)
        self.EMAIL_REQUEUE_AFTER = _int("EMAIL_REQUEUE_AFTER", 300)
        self.EMAIL_SWEEP_INTERVAL = _int("EMAIL_SWEEP_INTERVAL", 60)
        self.EMAIL_MAX_ATTEMPTS = _int("EMAIL_MAX_ATTEMPTS", len(self.EMAIL_RETRY_INTERVALS) + 1)
        # Summary mails (held mail after quiet hours or the hourly cap, digests): how often the
        # job looks for due ones (seconds). Worker-offline alerts are checked as often.
        self.EMAIL_SUMMARY_INTERVAL = _int("EMAIL_SUMMARY_INTERVAL", 60)
        self.WORKER_ALERT_INTERVAL = _int("WORKER_ALERT_INTERVAL", 60)
        # Web Push (services/webpush.py): the VAPID key pair (PEM file paths, or generated into
        # instance/ when unset), the contact the push services see, how long they keep a message.
        self.VAPID_PRIVATE_KEY_FILE = os.environ.get("VAPID_PRIVATE_KEY_FILE", str(INSTANCE_DIR / "vapid_private.pem"))
        self.VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:admin@localhost")
        self.PUSH_TTL = _int("PUSH_TTL", 24 * 3600)  # seconds
        self.PUSH_TIMEOUT = _int("PUSH_TIMEOUT", 10)  # seconds per push service request
        # Tests only: accept http:// push endpoints on 127.0.0.1 (a loopback push service).
        self.PUSH_ALLOW_HTTP_LOOPBACK = _bool("PUSH_ALLOW_HTTP_LOOPBACK", False)
        # A running broadcast fan-out silent this long is resumed by the sweep (seconds).
        self.BROADCAST_STALE_AFTER = _int("BROADCAST_STALE_AFTER", 600)
        # Seconds an Idempotency-Key of POST /api/internal/notifications is remembered (at least).
        self.IDEMPOTENCY_KEY_TTL = _int("IDEMPOTENCY_KEY_TTL", 24 * 3600)
        self.BROADCAST_BATCH_SIZE = _int("BROADCAST_BATCH_SIZE", 500)  # users per transaction in a broadcast fan-out
        self.MINING_EVENT_RETENTION_DAYS = _int("MINING_EVENT_RETENTION_DAYS", 90)
        # Days an archived conversation (a dissolved coop's chat, a direct or group one
        # nobody is in) is kept before the daily purge deletes it (services/chat_retention.py).
        self.CHAT_ARCHIVE_RETENTION_DAYS = _int("CHAT_ARCHIVE_RETENTION_DAYS", 90)
        # Workers per web process storing socket posts together (webapp/post_lane.py; 0: each alone),
        # and how many of its socket posts are stored one by one at once before the next waits for them.
        self.CHAT_POST_LANES = _int("CHAT_POST_LANES", 2)
        self.CHAT_POST_ALONE = _int("CHAT_POST_ALONE", 2)
        self.WORKER_OFFLINE_AFTER = _int("WORKER_OFFLINE_AFTER", 15 * 60)  # seconds
        self.COOP_HASHRATE_INTERVAL = _int("COOP_HASHRATE_INTERVAL", 300)  # seconds
        self.COOP_HASHRATE_CACHE_TTL = _int("COOP_HASHRATE_CACHE_TTL", 300)  # seconds
        # Open coop pages refresh after mining events at most this often (seconds, per coop).
        self.COOP_LIVE_PUSH_INTERVAL = _int("COOP_LIVE_PUSH_INTERVAL", 10)
        self.COOP_JOIN_RATE_LIMIT = os.environ.get("COOP_JOIN_RATE_LIMIT", "30 per minute")  # join attempts per IP
        self.ACTIVITY_POLL_SECONDS = _int("ACTIVITY_POLL_SECONDS", 10)  # /activity checks for new entries
        # An open /leaderboard refreshes its table this often while its tab is visible (seconds).
        self.LEADERBOARD_REFRESH_SECONDS = _int("LEADERBOARD_REFRESH_SECONDS", 60)
        # An open miner profile re-reads its figures, workers and personal bests this often (seconds).
        self.PROFILE_REFRESH_SECONDS = _int("PROFILE_REFRESH_SECONDS", 30)
        # Friends and profiles (docs/API.md "Friends and blocks", "Profiles").
        self.FRIEND_REQUEST_DAILY_CAP = _int("FRIEND_REQUEST_DAILY_CAP", 50)  # requests a miner may send in 24 h
        self.FRIEND_REQUEST_TTL_DAYS = _int("FRIEND_REQUEST_TTL_DAYS", 30)  # a pending request expires after
        self.SEARCH_RATE_LIMIT = os.environ.get("SEARCH_RATE_LIMIT", "30 per minute")  # miner searches per IP
        # Uploaded avatars and banners: where they are stored (services/media.py) and the largest upload.
        # MEDIA_STORAGE: local | s3 | a dotted factory path; checked at app creation.
        self.MEDIA_STORAGE = os.environ.get("MEDIA_STORAGE", "local")
        self.MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(INSTANCE_DIR / "media"))
        # MEDIA_STORAGE=s3 (docs/DEPLOYMENT.md "Uploaded images"); credentials from boto3's chain (AWS_*).
        self.MEDIA_S3_BUCKET = os.environ.get("MEDIA_S3_BUCKET", "")  # required with s3
        self.MEDIA_S3_PREFIX = os.environ.get("MEDIA_S3_PREFIX", "")  # e.g. "media/": keys become media/avatars/...
        self.MEDIA_S3_ENDPOINT_URL = os.environ.get("MEDIA_S3_ENDPOINT_URL", "")  # MinIO, R2, ...; empty: AWS
        self.MEDIA_S3_REGION = os.environ.get("MEDIA_S3_REGION", "")  # empty: boto3's (AWS_DEFAULT_REGION, ...)
        self.MEDIA_S3_ADDRESSING_STYLE = os.environ.get("MEDIA_S3_ADDRESSING_STYLE", "auto")  # auto | path | virtual
        self.MEDIA_MAX_UPLOAD = _int("MEDIA_MAX_UPLOAD", 2 * 1024 * 1024)

        self.INGEST_BATCH_SIZE = _int("INGEST_BATCH_SIZE", 2000)
        self.INGEST_CONSUMER_GROUP = os.environ.get("INGEST_CONSUMER_GROUP", "webapp-ingest")
        self.INGEST_CLAIM_IDLE_MS = _int("INGEST_CLAIM_IDLE_MS", 60_000)
        # A consumer with nothing pending, idle this long, is removed from the group.
        self.INGEST_DEAD_CONSUMER_IDLE_MS = _int("INGEST_DEAD_CONSUMER_IDLE_MS", 600_000)
        self.MINING_STREAM_TRIM_INTERVAL = _int("MINING_STREAM_TRIM_INTERVAL", 300)  # seconds between XTRIMs

        self.WS_MAX_SOCKETS_PER_USER = _int("WS_MAX_SOCKETS_PER_USER", 5)
        self.WS_MAX_MESSAGE_SIZE = _int("WS_MAX_MESSAGE_SIZE", 4096)
        self.WS_PING_INTERVAL = _int("WS_PING_INTERVAL", 25)
        self.WS_PERMESSAGE_DEFLATE = _bool("WS_PERMESSAGE_DEFLATE", False)  # off: ~200 KB less per socket (docs/NOTIFICATIONS.md)

        # Embedded default only: run periodic jobs on a thread of the web
        # process, since there is no separate worker or scheduler.
        self.EMBEDDED_SCHEDULER = _bool("EMBEDDED_SCHEDULER", not self.REDIS_URL)

    @property
    def embedded(self) -> bool:
        return not self.REDIS_URL
