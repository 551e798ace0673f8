# `make run`: the app with its demo world on the embedded default (SQLite and
# an in-process Redis stand-in). `make test`: the suite on real PostgreSQL
# and Redis. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

# `make run PORT=5001` serves on another port.
PORT ?= 5000

.PHONY: run test test-fast test-random lint format install install-dev services chromium bench run-prod clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Serves at once; the demo day flows in behind the server (a bar here, a
# banner on the pages), then a real-time replay keeps the world alive.
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask demo --serve --host 127.0.0.1 --port $(PORT)

services:
	@scripts/ensure-services.sh

# Browser tests drive Debian's chromium (never a downloaded browser build);
# the emoji font draws flags and icons in the screenshots.
chromium:
	@{ command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/truetype/noto ]; } || { \
	  echo "installing Debian's chromium and fonts-noto-color-emoji"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; }

# ruff (pyflakes, pycodestyle, bugbear, isort, pyupgrade) over the tree and
# mypy over webapp/ and jobs/ (both report before either fails the target);
# settings in pyproject.toml. `make format` applies ruff's safe fixes.
lint: install-dev
	status=0; $(BIN)/ruff check . || status=1; $(BIN)/mypy || status=1; exit $$status

format: install-dev
	$(BIN)/ruff check --fix .

# Lint first, then the suite. Coverage over webapp/ and jobs/ must stay at 85%
# or more (seed 000 §7.8.3); pytest-cov merges the workers' data. The suite
# runs in TEST_WORKERS processes (pytest-xdist, default 2: one per core),
# each with its own database and Redis slot (tests/conftest.py); a file stays
# on one worker (--dist loadfile), its tests in file order (pytest.ini), the
# longest files handed out first (LONGEST_FIRST in tests/conftest.py, kept by
# --no-loadscope-reorder). `make test TEST_WORKERS=0` runs it in one
# process; see test-random.
TEST_WORKERS ?= 2
test: install-dev lint services chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --cov=webapp --cov=jobs \
	  --cov-report=term-missing:skip-covered --cov-fail-under=85

# The inner loop: every test but the browser, fuzz and slow ones (markers in
# pytest.ini), no coverage gate, no browser to install.
test-fast: install-dev services
	$(BIN)/python -m pytest -q -m "not browser and not fuzz and not slow"

# The whole suite shuffled by pytest-randomly: SEED=1234 replays an order
# (each run prints its seed); without SEED a new order is drawn.
SEED ?=
test-random: install-dev services chromium
	$(BIN)/python -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED))

# The four Procfile processes against PostgreSQL and Redis (DATABASE_URL,
# REDIS_URL; defaults: database `webapp` on 127.0.0.1:5432, created when
# missing, and redis://127.0.0.1:6379/0), JSON logs; Ctrl-C stops them all.
# docs/DEPLOYMENT.md.
run-prod: install
	@if [ -z "$$DATABASE_URL$$REDIS_URL" ]; then scripts/ensure-services.sh; fi
	@scripts/run-prod.sh

# Every benchmark with its default size, one after the other (the soak alone
# takes ~6.5 minutes); BENCHES="api soak" runs some. Loopback only, each
# script cleans up its database and Redis. Results: docs/PERFORMANCE.md.
BENCHES ?= ingest coop_hashrate activity_feed push_latency api soak
bench: install services
	@command -v wrk >/dev/null 2>&1 || { echo "installing Debian's wrk"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@for b in $(BENCHES); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage .mypy_cache .ruff_cache
