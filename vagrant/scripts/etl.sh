#!/usr/bin/env bash
# etl1 (192.168.4.50): pseidon-dagster as three Dagster processes under systemd, user pseidon --
#   dagster-code-server  the code location, gRPC on 127.0.0.1:4000 (runs are launched as its children)
#   dagster-daemon       ingest_sensor every 30 s, the run queue, run retries and monitoring
#   dagster-webserver    the UI on 127.0.0.1:3000 only (no authentication of its own: SSH tunnel, see README.md)
# The project checkout is mounted at /srv/pseidon-dagster (Vagrantfile); it is copied to /opt/pseidon-dagster/src and
# installed (not editable) into /opt/pseidon-dagster/venv. Config: /opt/pseidon-etl/conf/pseidon.edn (from
# /vagrant/config/pseidon.edn), Dagster instance: /var/lib/dagster (the project's dagster.yaml: SQLite storage),
# files: /var/lib/pseidon. Re-run `vagrant provision etl1` after changing the code.
# Environment from the Vagrantfile: NODE_IP, SERVICES_IP, KAFKA_BROKERS, REDIS_PASSWORD, MYSQL_PASSWORD.
set -euo pipefail
: "${SERVICES_IP:?set by the Vagrantfile}" "${KAFKA_BROKERS:?}" "${REDIS_PASSWORD:?}" "${MYSQL_PASSWORD:?}"
SRC=/srv/pseidon-dagster
APP=/opt/pseidon-dagster
CONF=/opt/pseidon-etl/conf/pseidon.edn
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends python3-venv python3-dev build-essential rsync curl \
  mariadb-client redis-tools
if [ ! -f "$SRC/pyproject.toml" ]; then
  echo "$SRC has no pyproject.toml: the Vagrantfile mounts the project checkout (..) there" >&2
  exit 1
fi

id pseidon >/dev/null 2>&1 || useradd --system --home-dir /var/lib/pseidon --shell /bin/bash pseidon
install -d -o pseidon -g pseidon /var/lib/pseidon /var/lib/pseidon/lake /var/lib/pseidon/quarantine /var/lib/dagster
install -d "$APP" /opt/pseidon-etl/conf /etc/pseidon

# --- the code ---------------------------------------------------------------------------------------------------
rsync -a --delete --exclude /.venv --exclude /var --exclude /.git --exclude /vagrant/.vagrant \
  --exclude /vagrant/files --exclude /build --exclude '*.egg-info' --exclude __pycache__ "$SRC/" "$APP/src/"
if [ ! -x "$APP/venv/bin/python" ]; then python3 -m venv "$APP/venv"; fi
"$APP/venv/bin/pip" install -q --upgrade pip
"$APP/venv/bin/pip" install -q "$APP/src"
install -m 644 "$SRC/deploy/workspace.yaml" "$APP/workspace.yaml"

# --- configuration ----------------------------------------------------------------------------------------------
install -m 640 -o root -g pseidon /dev/null "$CONF"
sed -e "s|:etl-db-pwd \"pseidon-vagrant\"|:etl-db-pwd \"${MYSQL_PASSWORD}\"|" \
    -e "s|:password \"pseidon-vagrant\"|:password \"${REDIS_PASSWORD}\"|" /vagrant/config/pseidon.edn > "$CONF"
install -m 644 "$APP/src/dagster.yaml" /var/lib/dagster/dagster.yaml
chown pseidon:pseidon /var/lib/dagster/dagster.yaml
cat > /etc/pseidon/dagster.env <<ENV
DAGSTER_HOME=/var/lib/dagster
PSEIDON_CONF=${CONF}
ENV
# What the helper scripts in /vagrant/scripts read when the environment does not say otherwise (cluster.py).
install -m 640 -o root -g pseidon /dev/null /etc/pseidon/scripts.env
cat > /etc/pseidon/scripts.env <<ENV
KAFKA_BROKERS=${KAFKA_BROKERS}
REDIS_HOST=${SERVICES_IP}:6379
REDIS_PASSWORD=${REDIS_PASSWORD}
MYSQL_HOST=${SERVICES_IP}:3306
MYSQL_PASSWORD=${MYSQL_PASSWORD}
HIVE_URL=//${SERVICES_IP}:10000/pseidon_it
PSEIDON_CONF=${CONF}
DAGSTER_HOME=/var/lib/dagster
PSEIDON_DATA=/var/lib/pseidon/lake
ENV

# --- can this box reach what the config names? ---------------------------------------------------------------------
sudo -u pseidon env PSEIDON_CONF="$CONF" "$APP/venv/bin/pseidon-dagster" logs list ||
  echo "WARNING: pseidon_logs on ${SERVICES_IP} is not readable or has bad rows (is services1 up?)" >&2
REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h "$SERVICES_IP" ping ||
  echo "WARNING: Redis on ${SERVICES_IP}:6379 does not answer (is services1 up?)" >&2

# --- the three Dagster processes: the production units of deploy/systemd -----------------------------------------
install -m 644 "$SRC"/deploy/systemd/dagster-code-server.service "$SRC"/deploy/systemd/dagster-daemon.service \
  "$SRC"/deploy/systemd/dagster-webserver.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable dagster-code-server.service dagster-daemon.service dagster-webserver.service
systemctl restart dagster-code-server.service
systemctl restart dagster-daemon.service dagster-webserver.service
for i in $(seq 1 120); do
  if curl -fsS http://127.0.0.1:3000/server_info >/dev/null 2>&1; then break; fi
  if [ "$i" = 120 ]; then echo "dagster-webserver did not answer on 127.0.0.1:3000: journalctl -u dagster-webserver" >&2; exit 1; fi
  sleep 1
done
echo "etl1: Dagster is up (code server 127.0.0.1:4000, daemon, webserver 127.0.0.1:3000)."
echo "  UI:   vagrant ssh etl1 -- -N -L 3000:127.0.0.1:3000   then http://127.0.0.1:3000"
echo "  test: vagrant ssh etl1 -c 'sudo -u pseidon /vagrant/scripts/etl2-integration-test.sh'"
