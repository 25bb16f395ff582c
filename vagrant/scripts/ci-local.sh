#!/usr/bin/env bash
# ci-local.sh: the Vagrant cluster's scripts against services on loopback, as CI runs them (.ci/run), without VMs.
#   - starts tansu (Kafka protocol) on a free port and a redis-server with a password (requirepass, protected mode
#     on) on another; creates a throw-away MariaDB database and user on the local MariaDB (MYSQL_ADMIN_ARGS, default
#     -h127.0.0.1 -P3306 -uroot) from vagrant/config/db.sql; uses the Hive Thrift Server on PSEIDON_HIVE_PORT (or
#     PSEIDON_TEST_HIVE_PORT) when given, else runs without Hive;
#   - starts the ETL box's three Dagster processes with the ExecStart lines of deploy/systemd/*.service
#     (paths and ports moved to this checkout and free loopback ports): code server, daemon, webserver;
#   - runs every helper script (--help, then for real) and etl2-integration-test.sh --mode daemon, whose run is
#     launched by that daemon from a tick of ingest_sensor;
#   - stops and drops what it started. Every address is loopback; PSEIDON_LOOPBACK_ONLY=1 makes the scripts refuse
#     any other. Needs `make install` first. ETL2_MESSAGES (default 3000), ETL2_TIMEOUT (default 240).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
S="$REPO/vagrant/scripts"
PY="$REPO/.venv/bin/python"
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
[ -x "$PY" ] || { echo "ci-local.sh: $PY missing: run make install first" >&2; exit 2; }
WORK="$(mktemp -d /tmp/pseidon-vagrant-ci.XXXXXX)"
read -r -a MYSQL_ADMIN <<< "${MYSQL_ADMIN_ARGS:--h127.0.0.1 -P3306 -uroot}"
ID="vci$$"
PIDS=()
passed=0
failed=0
t_start=$SECONDS

log() { printf '%s ci-local: %s\n' "$(date +%H:%M:%S)" "$*"; }
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {  # PORT SECONDS
  local i
  for ((i = 0; i < $2; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 1
  done
  return 1
}
start() {  # NAME DIR CMD...: in DIR, in its own session (process group), output to $WORK/NAME.log
  local name="$1" dir="$2"
  shift 2
  (cd "$dir" && exec setsid "$@") > "$WORK/$name.log" 2>&1 < /dev/null &
  PIDS+=("$!")
  log "started $name (pid $!): $*"
}
stop_all() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$?
  set +e
  stop_all
  "$PY" -m pseidon_dagster.cli services down --state-dir "$WORK/services" >/dev/null 2>&1
  mysql "${MYSQL_ADMIN[@]}" -e "DROP DATABASE IF EXISTS pseidon_$ID; DROP USER IF EXISTS 'pseidon_$ID'@'127.0.0.1';"
  if [ -n "${HIVE_PORT:-}" ]; then
    "$PY" -c "from pseidon_dagster.core.hive.client import HiveCatalog; from pseidon_dagster.core.hive.url import \
HiveTarget; HiveCatalog(HiveTarget('127.0.0.1', $HIVE_PORT), 'ci', retries=0).execute('DROP DATABASE IF EXISTS \
pseidon_$ID CASCADE')" >/dev/null 2>&1 || echo "ci-local: could not drop the Hive database pseidon_$ID" >&2
  fi
  if [ "$rc" != 0 ]; then
    for f in "$WORK"/*.log; do echo "----- $f (last lines)"; tail -n 25 "$f"; done
  fi
  rm -rf "$WORK"
  log "finished in $((SECONDS - t_start))s"
  exit "$rc"
}
trap cleanup EXIT
check() {  # DESCRIPTION CMD...: run, count, show the output's last lines
  local what="$1" out rc
  shift
  log "check: $what"
  set +e
  out="$("$@" 2>&1)"
  rc=$?
  set -e
  printf '%s\n' "$out" | tail -n "${CHECK_LINES:-6}" | sed 's/^/    /'
  if [ "$rc" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); log "FAILED ($rc): $what"; fi
}
expect_fail() {  # DESCRIPTION CMD...: the command must exit non-zero
  local what="$1" rc
  shift
  log "check: $what"
  set +e
  "$@" > "$WORK/expect_fail.out" 2>&1
  rc=$?
  set -e
  tail -n 2 "$WORK/expect_fail.out" | sed 's/^/    /'
  if [ "$rc" != 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); log "FAILED (exit 0): $what"; fi
}

# --- static checks: bash -n, shellcheck, ruby -c (also in tests/unit/test_vagrant_static.py, which this makes sure can run) ----
missing=()
for t in shellcheck ruby; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ "${#missing[@]}" -gt 0 ] && [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } > "$WORK/apt.log" 2>&1; then
    log "apt-get install ${missing[*]} failed"
    tail -n 20 "$WORK/apt.log"
    exit 1
  fi
fi
for script in "$S"/*.sh; do check "bash -n $(basename "$script")" bash -n "$script"; done
if command -v shellcheck >/dev/null; then
  check "shellcheck -x vagrant/scripts/*.sh" shellcheck -x "$S"/*.sh
else
  log "WARNING: shellcheck not installed, not checked (apt-get install -y shellcheck)"
fi
if command -v ruby >/dev/null; then
  check "ruby -c vagrant/Vagrantfile" ruby -c "$REPO/vagrant/Vagrantfile"
else
  log "WARNING: ruby not installed, the Vagrantfile not checked (apt-get install -y ruby)"
fi

# --- services on loopback ---------------------------------------------------------------------------------------
export PSEIDON_LOOPBACK_ONLY=1 PSEIDON_SCRIPTS_ENV=/dev/null
KAFKA_PORT="$(free_port)"
REDIS_PORT="$(free_port)"
REDIS_PASSWORD="ci-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
MYSQL_PASSWORD="ci-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
REDIS_BIN="$(command -v redis-server || echo "$REPO/.venv/bin/redis-server")"
start redis "$WORK" "$REDIS_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --requirepass "$REDIS_PASSWORD" \
  --save "" --appendonly no --dir "$WORK"
wait_port "$REDIS_PORT" 20 || { log "redis-server did not start"; exit 1; }
# tansu (from the project's own command; Redis is found running on REDIS_PORT, so only tansu is started)
"$PY" -m pseidon_dagster.cli services up --state-dir "$WORK/services" --kafka-port "$KAFKA_PORT" \
  --redis-port "$REDIS_PORT"
mysql "${MYSQL_ADMIN[@]}" <<SQL
CREATE DATABASE pseidon_$ID;
CREATE USER 'pseidon_$ID'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT SELECT, INSERT, UPDATE, DELETE ON pseidon_$ID.* TO 'pseidon_$ID'@'127.0.0.1';
SQL
mysql "${MYSQL_ADMIN[@]}" "pseidon_$ID" < "$REPO/vagrant/config/db.sql"
# the sample row names a Vagrant box; nothing here may contact it
mysql "${MYSQL_ADMIN[@]}" "pseidon_$ID" -e "DELETE FROM pseidon_logs"
HIVE_PORT="${PSEIDON_HIVE_PORT:-${PSEIDON_TEST_HIVE_PORT:-}}"
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" KAFKA_REPLICATION=1
export REDIS_HOST="127.0.0.1:$REDIS_PORT" REDIS_PASSWORD
export MYSQL_HOST=127.0.0.1:3306 MYSQL_USER="pseidon_$ID" MYSQL_PASSWORD MYSQL_DB="pseidon_$ID"
export PSEIDON_DATA="$WORK/data/lake" PSEIDON_CONF="$WORK/pseidon.edn" DAGSTER_HOME="$WORK/dagster_home"
if [ -n "$HIVE_PORT" ]; then
  export HIVE_URL="//127.0.0.1:$HIVE_PORT/pseidon_$ID" ETL2_NO_HIVE=0
else
  export HIVE_URL="//127.0.0.1:1/none" ETL2_NO_HIVE=1
  log "no PSEIDON_HIVE_PORT: the integration test runs without Hive registration"
fi
# The ETL box's pseidon.edn (vagrant/config/pseidon.edn), with loopback addresses and this run's passwords.
cat > "$PSEIDON_CONF" <<EDN
{:etl-db-host "//127.0.0.1:3306/pseidon_$ID?autoReconnect=true"
 :etl-db-user "pseidon_$ID"
 :etl-db-pwd "$MYSQL_PASSWORD"
 :etl-group "etl"
 :kafka-brokers [{:host "127.0.0.1" :port $KAFKA_PORT}]
 :kafka-use-earliest true
 :redis-conf {:host "127.0.0.1:$REDIS_PORT" :password "$REDIS_PASSWORD"}
 :data-dir "$WORK/data"
 :sensor-min-lag 1
 :writer {:rollover-size 115000000 :rollover-timeout 60000}}
EDN

# --- the ETL box's three Dagster processes, from the systemd units -----------------------------------------------
CODE_PORT="$(free_port)"
WEB_PORT="$(free_port)"
mkdir -p "$DAGSTER_HOME"
cp "$REPO/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
sed "s/port: 4000/port: $CODE_PORT/" "$REPO/deploy/workspace.yaml" > "$WORK/workspace.yaml"
unit_command() {  # UNIT: its ExecStart, moved to this checkout's venv, this run's workspace and ports
  sed -n 's/^ExecStart=//p' "$REPO/deploy/systemd/$1" |
    sed -e "s#/opt/pseidon-dagster/venv/bin/#$REPO/.venv/bin/#" \
        -e "s#/opt/pseidon-dagster/workspace.yaml#$WORK/workspace.yaml#" \
        -e "s#-p 4000#-p $CODE_PORT#" -e "s#-p 3000#-p $WEB_PORT#"
}
for unit in dagster-code-server dagster-daemon dagster-webserver; do
  read -r -a cmd <<< "$(unit_command "$unit.service")"
  if [[ "${cmd[*]}" == */opt/* || "${cmd[*]}" == *0.0.0.0* ]]; then
    log "$unit.service: ExecStart not moved to loopback/this checkout: ${cmd[*]}"
    exit 1
  fi
  start "$unit" "$DAGSTER_HOME" "${cmd[@]}"
  if [ "$unit" = dagster-code-server ]; then
    wait_port "$CODE_PORT" 120 || { log "the code server did not open 127.0.0.1:$CODE_PORT"; exit 1; }
  fi
done
for ((i = 0; i < 120; i++)); do
  curl -fsS "http://127.0.0.1:$WEB_PORT/server_info" > "$WORK/server_info" 2>/dev/null && break
  sleep 1
done
check "dagster-webserver answers on 127.0.0.1:$WEB_PORT" cat "$WORK/server_info"

# --- the helper scripts -----------------------------------------------------------------------------------------
for script in print-kafka-messages.py push-kafka-messages.py test-kafka.py cluster.py; do
  check "$script --help" "$PY" "$S/$script" --help
done
for script in create_topic.sh create_topic_remote.sh etl2-integration-test.sh; do
  check "$script --help" env PYTHON="$PY" "$S/$script" --help
done
check "test-kafka.py" "$PY" "$S/test-kafka.py" --messages 500
TOPIC="ci-helpers-$ID"
check "create_topic.sh $TOPIC" env PYTHON="$PY" "$S/create_topic.sh" "$TOPIC"
check "create_topic_remote.sh $TOPIC (exists already)" env PYTHON="$PY" "$S/create_topic_remote.sh" "$TOPIC" 3
check "push-kafka-messages.py 25 $TOPIC" "$PY" "$S/push-kafka-messages.py" 25 "$TOPIC" '{ts},{i},hello'
check "print-kafka-messages.py $TOPIC 25" "$PY" "$S/print-kafka-messages.py" "$TOPIC" 25 --timeout 30
expect_fail "print-kafka-messages.py $TOPIC 26 fails (only 25 there)" \
  "$PY" "$S/print-kafka-messages.py" "$TOPIC" 26 --timeout 3 --quiet
expect_fail "a Vagrant default is refused under PSEIDON_LOOPBACK_ONLY" \
  env -u KAFKA_BROKERS "$PY" "$S/test-kafka.py" --messages 1

# --- the integration test, through the daemon ---------------------------------------------------------------------
CHECK_LINES=40 check "etl2-integration-test.sh --mode daemon" env PYTHON="$PY" "$S/etl2-integration-test.sh" --mode daemon \
  --messages "${ETL2_MESSAGES:-3000}" --timeout "${ETL2_TIMEOUT:-240}"

log "vagrant scripts: $passed passed, $failed failed"
[ "$failed" = 0 ]
