#!/usr/bin/env bash
# Install and run the whole suite: SQLite always, PostgreSQL too when 127.0.0.1:5432 answers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv

# the console's browser tests drive Debian's Chromium (never a downloaded browser)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "could not install chromium: the browser tests will be skipped"
fi

if [ -z "${TEST_DATABASE_URL:-}" ] && .venv/bin/python - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
then
  # only used to create (and later drop) this run's own uniquely named databases
  export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres"
fi
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "databases: SQLite, and PostgreSQL at $(.venv/bin/python -c 'import sys; from sqlalchemy.engine import make_url; u = make_url(sys.argv[1]); print(f"{u.host or chr(0x2d)}:{u.port or 5432}")' "$TEST_DATABASE_URL") (this run's own databases, dropped afterwards)"
else
  echo "databases: SQLite only (no PostgreSQL answers at 127.0.0.1:5432)"
fi

.venv/bin/ruff check ivr app tests scripts
.venv/bin/mypy
# pytest exits 5 when it ran no test: that is a failure here too
.venv/bin/pytest "$@"
