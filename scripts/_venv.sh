# Shared by run.sh and test.sh: create .venv and install the project (idempotent).
#
# Dependencies come from requirements-dev.lock, every file checked against its hash, so a
# fresh machine gets exactly the versions the suite passed with (scripts/lock.sh refreshes
# the lock); the project itself is then installed on top, without touching them.
#
# PEERLINE_VENV=/path/to/venv uses that environment as it is (nothing is installed into it)
# and this checkout's code ahead of whatever it has installed: how the newcomer test runs a
# fresh clone without a minute of installing.
ensure_venv() {
  if [ -n "${PEERLINE_VENV:-}" ]; then
    VENV="$PEERLINE_VENV"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    return
  fi
  VENV=.venv
  local python="${PYTHON:-python3}"
  local lock=requirements-dev.lock
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  local stamp=.venv/.peerline-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$lock"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    touch "$stamp"
  fi
}
