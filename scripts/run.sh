#!/usr/bin/env bash
# Set up and run Peerline on this machine: .venv, migrations, a demo programme the first
# time, then serve on ${HOST:-127.0.0.1}:${PORT:-8000} (SQLite unless DATABASE_URL says otherwise).
#
#   DEMO=0        do not load the demo programme into a new database
#   DEMO_PAIRS, DEMO_WEEKS   its size (default 24 pairs over 12 weeks)
#   PORT, HOST    where to listen
#   PUBLIC_BASE_URL   where it is reached (default http://localhost:$PORT), printed for a
#                 second terminal when it is not the default
#   PEERLINE_VENV     use that environment as it is instead of .venv (scripts/_venv.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv
# DATABASE_URL is left to the settings (the environment, then .env, then ./peerline.db):
# exporting a default here would silently override a database named in .env
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
# The service's own address: Twilio's signatures are checked against it, and `peerline
# phone`, `peerline reminders run` and `peerline fake-twilio` sign for it and call it. A
# loopback or wildcard HOST is spelled `localhost`, as the setting's default is, so that on
# the default port the commands in another terminal agree with the server unconfigured (on
# 127.0.0.1 every request they signed would be refused). A value in .env is left to win.
if [ -z "${PUBLIC_BASE_URL:-}" ] && ! grep -qs '^[[:space:]]*PUBLIC_BASE_URL=' .env; then
  case "$HOST" in
    127.0.0.1 | localhost | 0.0.0.0 | :: | "[::]") url_host=localhost ;;
    *:*) url_host="[$HOST]" ;;
    *) url_host="$HOST" ;;
  esac
  export PUBLIC_BASE_URL="http://$url_host:$PORT"
fi
"$VENV"/bin/peerline db upgrade

# A database with no staff and no participants is new: it gets the demo programme (a
# synthetic cohort, every call played through the service) and a demo admin account.
fresh=$("$VENV"/bin/python - <<'PY'
from sqlalchemy import func, select
from app.db import make_engine, make_sessionmaker
from app.models import Pair, Participant, StaffUser
from app.simulator.cohort import DEMO_NOTE
from app.settings import get_settings
engine = make_engine(get_settings().database_url)
with make_sessionmaker(engine)() as db:
    empty = not db.scalar(select(func.count()).select_from(Participant)) and not db.scalar(
        select(func.count()).select_from(StaffUser)
    )
    demo = db.scalar(select(func.count()).select_from(Pair).where(Pair.notes == DEMO_NOTE))
print("yes" if empty else ("demo" if demo else "no"))
PY
)
if [ "$fresh" = yes ] && [ "${DEMO:-1}" != 0 ]; then
  echo "Loading the demo programme (DEMO=0 skips it)..."
  # the simulator plays Twilio through Starlette's test client, whose deprecation notice
  # is news to nobody loading a demo
  PYTHONWARNINGS='ignore:Using `httpx` with `starlette.testclient`' \
    "$VENV"/bin/peerline simulate-cohort --pairs "${DEMO_PAIRS:-24}" --weeks "${DEMO_WEEKS:-12}" --seed 1
  email=demo-admin@peerline.example.org
  password=$("$VENV"/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
  printf '%s\n' "$password" | "$VENV"/bin/peerline user add "$email" --role admin --password-stdin >/dev/null
  echo
  echo "Demo console sign-in: $email / $password"
  echo
  fresh=demo
fi
# the console says so on every page while the database holds the demo programme
if [ "$fresh" = demo ]; then
  export DEMO_DATA=true
fi

console="${PUBLIC_BASE_URL:-http://$HOST:$PORT}"
echo "Console: $console/console/   API: $console/docs"
# What a second terminal needs to reach this service: the README's "Try it" commands, and
# the lines that make them find this server when it is not on the defaults.
echo "Try it, in another terminal in this folder:"
if [ -n "${PEERLINE_VENV:-}" ]; then
  echo "  source $VENV/bin/activate && export PYTHONPATH=$PWD"
else
  echo "  source .venv/bin/activate"
fi
if [ -n "${PUBLIC_BASE_URL:-}" ] && [ "$PUBLIC_BASE_URL" != http://localhost:8000 ]; then
  echo "  export PUBLIC_BASE_URL=$PUBLIC_BASE_URL"
fi
if [ "$fresh" = demo ]; then
  echo "  peerline phone --from +16175550104                 # call as a demo participant"
else
  echo "  peerline phone --from NUMBER                       # call as a participant you enrolled"
fi
echo "  peerline reminders run --at +8dT14:00-05:00        # a reminder sweep 8 days from now, 2 pm US Eastern"
echo
exec "$VENV"/bin/peerline serve --host "$HOST" --port "$PORT"
