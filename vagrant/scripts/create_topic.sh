#!/usr/bin/env bash
# create_topic.sh TOPIC [PARTITIONS [REPLICATION]]
# Creates TOPIC (no error if it exists) from inside a box of the cluster (zookeeper1 or a broker), with the
# confluent-kafka admin API of /opt/pseidon-tools (installed by zookeeper.sh and broker.sh), and waits until every
# partition has a leader. Defaults: 3 partitions, replication KAFKA_REPLICATION (2), brokers KAFKA_BROKERS
# (broker1..3 of the Vagrant cluster). From the host use create_topic_remote.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  ""|-*) usage >&2; exit 2 ;;
esac
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in /opt/pseidon-tools/bin/python /opt/pseidon-dagster/venv/bin/python python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
args=(create-topic "$1")
[ -n "${2:-}" ] && args+=(--partitions "$2")
[ -n "${3:-}" ] && args+=(--replication "$3")
exec "$PY" "$HERE/cluster.py" "${args[@]}"
