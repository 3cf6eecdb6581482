#!/usr/bin/env bash
# Runs inside `scripts/services.py run --postgres --redis`: DATABASE_URL and REDIS_URL point at throwaway servers.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== pytest"; exec .venv/bin/python -m pytest "$@"
