#!/usr/bin/env bash
# `make run-prod`: the four processes of the Procfile (web, worker, scheduler,
# ingest) against PostgreSQL and Redis, as a deployment runs them
# (docs/DEPLOYMENT.md). Ctrl-C (or SIGTERM) stops all four; so does any one
# of them exiting.
#
# Settings: DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/webapp;
# the database is created when missing), REDIS_URL (default
# redis://127.0.0.1:6379/0), LOG_FORMAT (default json), BIND (gunicorn,
# default 127.0.0.1:8000), STOP_TIMEOUT (seconds before a process that
# ignores SIGTERM is killed, default 30), and every app setting
# (webapp/config.py; SECRET_KEY above all).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
export FLASK_APP=wsgi
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/webapp}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export LOG_FORMAT=${LOG_FORMAT:-json}
export PYTHONUNBUFFERED=1
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

say() { echo "run-prod: $*" >&2; }

if [ -z "${SECRET_KEY:-}" ]; then
  say "SECRET_KEY is not set: using the one kept in instance/secret_key (set it in a real deployment)"
fi

# The database named in DATABASE_URL, created when missing (needs a role
# allowed to CREATE DATABASE; a managed database already exists).
"$BIN/python" - <<'EOF'
import os
import sqlalchemy as sa
from webapp.config import normalise_database_url

url = sa.engine.make_url(normalise_database_url(os.environ["DATABASE_URL"]))
if url.get_backend_name() == "postgresql":
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}):
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            print(f"run-prod: created database {url.database}", flush=True)
    admin.dispose()
EOF
"$BIN/flask" db upgrade

declare -A PIDS=()

start() {  # start NAME COMMAND...: own session (Ctrl-C reaches only this script), output prefixed
  local name=$1
  shift
  setsid "$@" > >(trap '' INT TERM; exec sed -u "s/^/$(printf '%-9s' "$name")| /") 2>&1 &
  PIDS[$name]=$!
  say "started $name (pid ${PIDS[$name]}): $*"
}

stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  say "stopping ${!PIDS[*]}"
  for name in "${!PIDS[@]}"; do
    kill -TERM -- "-${PIDS[$name]}" 2>/dev/null || true  # the process group: gunicorn's workers too
  done
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for name in "${!PIDS[@]}"; do
    while kill -0 "${PIDS[$name]}" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "$name did not stop in ${STOP_TIMEOUT}s: killing it"
        kill -KILL -- "-${PIDS[$name]}" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  done
  wait 2>/dev/null || true
  say "stopped"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

start web "$BIN/gunicorn" -c gunicorn.conf.py wsgi:app
start worker "$BIN/flask" worker
start scheduler "$BIN/flask" scheduler
start ingest "$BIN/flask" ingest

# Any process ending ends the set, as a supervisor would notice.
set +e
wait -n "${PIDS[@]}"
status=$?
set -e
for name in "${!PIDS[@]}"; do
  if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
    say "$name exited (status $status): stopping the others"
  fi
done
exit "$status"
