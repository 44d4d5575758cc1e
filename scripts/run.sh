#!/usr/bin/env bash
# Set up (venv, dependencies, migrations) and run the whole lab: an embedded
# Redis (unless REDIS_URL is set), engine workers and daphne. Ctrl-C stops it all.
# Extra arguments go to `manage.py runlab`, e.g. --port 8001 --workers 2 --web 2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python manage.py runlab "$@"
