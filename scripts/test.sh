#!/usr/bin/env bash
# Runs inside `scripts/services.py run --postgres --redis`: DATABASE_URL and REDIS_URL point at throwaway servers.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
# two processes (PYTEST_WORKERS=0 for one). "--dist load" hands tests out in collection order, so each process still
# runs pytest-django's order (database tests before the transactional ones that flush what migrations created)
echo "== pytest"; exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist load "$@"
