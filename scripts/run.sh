#!/usr/bin/env bash
# Set up and run Peerline on this machine: .venv, migrations, then serve on 127.0.0.1:8000 (SQLite).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv
export DATABASE_URL="${DATABASE_URL:-sqlite:///./peerline.db}"
.venv/bin/peerline db upgrade
echo
echo "Try it: in another terminal,"
echo "  source .venv/bin/activate"
echo "  peerline participant add --name Ana --phone '(617) 555-0101' --timezone America/New_York"
echo "  peerline participant add --name Bea --phone '(617) 555-0102' --timezone America/Chicago"
echo "  peerline pair add 1 2"
echo "  peerline phone --from +16175550101"
echo
exec .venv/bin/peerline serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
