#!/usr/bin/env bash
# Refresh the console screenshots in docs/screenshots/, on purpose.
#
# The browser tests (tests/test_console_browser.py) write their screenshots to the
# git-ignored build/screenshots/, so running the tests never changes a tracked file.
# This script runs those tests and copies the fresh images over the committed ones;
# review them (git diff --stat docs/screenshots) and commit them like any change.
#
# Needs Debian's chromium (apt-get install chromium). VENV=/path/to/venv uses that
# environment instead of installing into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${VENV:-}" ]; then
  python="$VENV/bin/python"
else
  source scripts/_venv.sh
  ensure_venv
  python=.venv/bin/python
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "error: the screenshots need Debian's chromium (apt-get install chromium)" >&2
  exit 2
fi

rm -rf build/screenshots
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest -q -p no:cacheprovider tests/test_console_browser.py

shopt -s nullglob
fresh=(build/screenshots/*.png)
if [ "${#fresh[@]}" -eq 0 ]; then
  echo "error: the browser tests took no screenshots (were they skipped?)" >&2
  exit 2
fi
mkdir -p docs/screenshots
cp "${fresh[@]}" docs/screenshots/
echo "copied ${#fresh[@]} screenshots into docs/screenshots/"
for old in docs/screenshots/*.png; do
  if [ ! -e "build/screenshots/$(basename "$old")" ]; then
    echo "note: $old is no longer taken by the tests; delete it if nothing links to it"
  fi
done
changed=$(git status --short docs/screenshots 2>/dev/null || true)
if [ -n "$changed" ]; then
  echo "$changed"
  echo "review and commit them: git add docs/screenshots"
else
  echo "docs/screenshots/ is unchanged"
fi
