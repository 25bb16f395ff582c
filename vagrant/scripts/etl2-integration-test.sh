#!/usr/bin/env bash
# etl2-integration-test.sh [--messages N] [--timeout S] [--mode daemon|tick] [--no-hive] [...]
# Creates a unique topic, pushes N messages, inserts the log's pseidon_logs row, runs the ETL through Dagster (a tick
# of ingest_sensor and the ingest_job run it requests) and waits until the output files hold exactly the N messages.
# Exit 0 only then. On the Vagrant cluster run it on the ETL box:
#   vagrant ssh etl1 -c 'sudo -u pseidon /vagrant/scripts/etl2-integration-test.sh'
# --help lists every flag and the environment variables (KAFKA_BROKERS, REDIS_HOST, MYSQL_HOST, ...) that
# override the Vagrant defaults. The work is done by etl2_integration.py with the Python that has pseidon-dagster:
# $PYTHON, else /opt/pseidon-dagster/venv (the ETL box), else the checkout's .venv.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in /opt/pseidon-dagster/venv/bin/python "$HERE/../../.venv/bin/python"; do
    if [ -x "$candidate" ]; then PY="$candidate"; break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "etl2-integration-test.sh: no Python with pseidon-dagster found (set PYTHON, or run make install)" >&2
  exit 2
fi
exec "$PY" "$HERE/etl2_integration.py" "$@"
