#!/usr/bin/env bash
# create_topic_remote.sh TOPIC [PARTITIONS [REPLICATION]]
# Creates TOPIC on the Vagrant cluster from outside it (the host with the project checkout), over the host-only
# network, with the confluent-kafka admin API of the project's .venv (make install), and waits until every partition
# has a leader. No error if the topic exists. Defaults: 3 partitions, replication KAFKA_REPLICATION (2), brokers
# KAFKA_BROKERS (broker1..3 of the Vagrant cluster). PYTHON overrides the interpreter.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  ""|-*) usage >&2; exit 2 ;;
esac
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in "$HERE/../../.venv/bin/python" /opt/pseidon-dagster/venv/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
args=(create-topic "$1")
[ -n "${2:-}" ] && args+=(--partitions "$2")
[ -n "${3:-}" ] && args+=(--replication "$3")
exec "$PY" "$HERE/cluster.py" "${args[@]}"
