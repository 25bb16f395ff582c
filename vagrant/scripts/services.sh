#!/usr/bin/env bash
# services1 (192.168.4.10): Redis, MariaDB with pseidon_logs, and a Hive Thrift Server (Spark's, from the pyspark
# wheel) for partition registration.
#  - Redis 7 on NODE_IP:6379 and loopback with `requirepass` (REDIS_PASSWORD). Protected mode stays on: it only
#    refuses remote clients when no password is set, so with one, clients that AUTH are served.
#  - MariaDB on NODE_IP:3306: database `pseidon` with the seed's pseidon_logs DDL (/vagrant/config/db.sql) and the
#    user pseidon@'192.168.4.%' (MYSQL_PASSWORD) -- reachable from the boxes' network only (the host is 192.168.4.1).
#  - Hive Thrift Server (HiveServer2 protocol) on NODE_IP:10000 as the systemd unit hive-thrift: spark-submit
#    HiveThriftServer2, local mode, embedded Derby metastore and warehouse in /var/lib/hive-thrift. It has no
#    authentication (any user, any password), so it listens on the host-only network only.
# Environment from the Vagrantfile: NODE_IP, NETWORK_PREFIX, REDIS_PASSWORD, MYSQL_PASSWORD.
set -euo pipefail
: "${NODE_IP:?set by the Vagrantfile}" "${NETWORK_PREFIX:?}" "${REDIS_PASSWORD:?}" "${MYSQL_PASSWORD:?}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends redis-server mariadb-server mariadb-client openjdk-17-jre-headless \
  python3-venv procps

# --- Redis ----------------------------------------------------------------------------------------------------------
install -m 640 -o redis -g redis /dev/null /etc/redis/pseidon.conf
cat > /etc/redis/pseidon.conf <<CONF
# pseidon Vagrant cluster (written by /vagrant/scripts/services.sh); included at the end of redis.conf.
bind ${NODE_IP} 127.0.0.1 -::1
protected-mode yes
requirepass ${REDIS_PASSWORD}
CONF
grep -qxF 'include /etc/redis/pseidon.conf' /etc/redis/redis.conf ||
  echo 'include /etc/redis/pseidon.conf' >> /etc/redis/redis.conf
systemctl enable redis-server
systemctl restart redis-server
for _ in $(seq 1 30); do
  REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h "$NODE_IP" ping 2>/dev/null | grep -q PONG && break
  sleep 1
done
REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h "$NODE_IP" ping | grep -q PONG

# --- MariaDB ----------------------------------------------------------------------------------------------------
cat > /etc/mysql/mariadb.conf.d/60-pseidon.cnf <<CONF
# pseidon Vagrant cluster (written by /vagrant/scripts/services.sh)
[mysqld]
bind-address = ${NODE_IP}
CONF
systemctl enable mariadb
systemctl restart mariadb
# Root connects through the socket (unix_socket auth); the SQL below is idempotent, so re-provisioning is safe
# and applies a changed MYSQL_PASSWORD.
mysql --protocol=socket <<SQL
CREATE DATABASE IF NOT EXISTS pseidon;
CREATE USER IF NOT EXISTS 'pseidon'@'${NETWORK_PREFIX}.%' IDENTIFIED BY '${MYSQL_PASSWORD}';
ALTER USER 'pseidon'@'${NETWORK_PREFIX}.%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT SELECT, INSERT, UPDATE, DELETE ON pseidon.* TO 'pseidon'@'${NETWORK_PREFIX}.%';
FLUSH PRIVILEGES;
SQL
mysql --protocol=socket pseidon < /vagrant/config/db.sql

# --- Hive Thrift Server (Spark's, from the pyspark wheel) -------------------------------------------------------
id hive >/dev/null 2>&1 || useradd --system --home-dir /var/lib/hive-thrift --shell /usr/sbin/nologin hive
install -d -o hive -g hive /var/lib/hive-thrift /var/lib/hive-thrift/spark-conf /var/log/hive-thrift
# The metastore creates every table's and partition's LOCATION directory on this box's disk. The ETL's files are on
# etl1 (/var/lib/pseidon), so the same tree is created here, empty, for the metastore to write to.
install -d -o hive -g hive /var/lib/pseidon
if [ ! -x /opt/hive-thrift/bin/python ]; then python3 -m venv /opt/hive-thrift; fi
/opt/hive-thrift/bin/pip install -q --upgrade pip
/opt/hive-thrift/bin/pip install -q 'pyspark>=3.5,<5'
SPARK_HOME="$(/opt/hive-thrift/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
STATE=/var/lib/hive-thrift
METASTORE="jdbc:derby:;databaseName=${STATE}/metastore_db;create=true"
cat > /opt/hive-thrift/run.sh <<RUN
#!/usr/bin/env bash
# Started by hive-thrift.service (written by /vagrant/scripts/services.sh).
export SPARK_HOME="${SPARK_HOME}" SPARK_CONF_DIR="${STATE}/spark-conf" SPARK_LOG_DIR=/var/log/hive-thrift
export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=localhost
cd "${STATE}" || exit 1
exec "\${SPARK_HOME}/bin/spark-submit" --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \\
  --master 'local[2]' --name pseidon-hive \\
  --conf spark.driver.memory=768m --conf spark.ui.enabled=false \\
  --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \\
  --conf spark.sql.warehouse.dir=${STATE}/warehouse \\
  --conf 'spark.hadoop.javax.jdo.option.ConnectionURL=${METASTORE}' \\
  spark-internal \\
  --hiveconf hive.server2.thrift.port=10000 --hiveconf hive.server2.thrift.bind.host=${NODE_IP} \\
  --hiveconf hive.server2.transport.mode=binary --hiveconf hive.server2.authentication=NONE \\
  --hiveconf 'javax.jdo.option.ConnectionURL=${METASTORE}' \\
  --hiveconf hive.metastore.warehouse.dir=${STATE}/warehouse
RUN
chmod 755 /opt/hive-thrift/run.sh
cat > /etc/systemd/system/hive-thrift.service <<'UNIT'
[Unit]
Description=Hive Thrift Server (Spark HiveThriftServer2 from pyspark) for pseidon partition registration
After=network-online.target
Wants=network-online.target

[Service]
User=hive
Group=hive
ExecStart=/opt/hive-thrift/run.sh
Restart=on-failure
RestartSec=10
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable hive-thrift.service
systemctl restart hive-thrift.service
echo "waiting for the Hive Thrift Server on ${NODE_IP}:10000 (30-120 s)"
for i in $(seq 1 240); do
  if (exec 3<>"/dev/tcp/${NODE_IP}/10000") 2>/dev/null; then break; fi
  if [ "$i" = 240 ]; then echo "Hive Thrift Server did not start: journalctl -u hive-thrift" >&2; exit 1; fi
  sleep 1
done
echo "services1: redis ${NODE_IP}:6379 (password), mariadb ${NODE_IP}:3306 (pseidon@${NETWORK_PREFIX}.%)," \
  "hive ${NODE_IP}:10000"
