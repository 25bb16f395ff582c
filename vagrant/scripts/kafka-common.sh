#!/usr/bin/env bash
# Functions shared by zookeeper.sh and broker.sh (sourced, not run): Java, Kafka downloaded once into /vagrant/files
# (checked against the release's .sha512) and unpacked to /opt/kafka, the systemd unit, and /opt/pseidon-tools
# (a venv with confluent-kafka for create_topic.sh). Settings come from the Vagrantfile's environment.

: "${KAFKA_VERSION:?set by the Vagrantfile}" "${SCALA_VERSION:?}" "${KAFKA_MIRROR:?}" "${KAFKA_CLUSTER_ID:?}"
CACHE=/vagrant/files
KAFKA_NAME="kafka_${SCALA_VERSION}-${KAFKA_VERSION}"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -f /var/lib/apt/periodic/pseidon-updated ]; then
    apt-get update -q
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/pseidon-updated
  fi
  apt-get install -y -q --no-install-recommends "$@"
}

# The .sha512 files of Apache releases come in two layouts ("name: 1A2B 3C4D ..." over several lines, or
# "1a2b3c4d...  name"); both reduce to the 128 hex digits.
sha512_of_release_file() {
  sed "s/${KAFKA_NAME}\.tgz//" "$1" | tr -d ' \t\r\n:' | tr 'A-F' 'a-f' | grep -oE '^[0-9a-f]{128}$'
}

fetch_kafka() {
  local tgz="$CACHE/${KAFKA_NAME}.tgz" url="${KAFKA_MIRROR}/${KAFKA_VERSION}/${KAFKA_NAME}.tgz"
  mkdir -p "$CACHE"
  if [ ! -s "$tgz" ]; then
    echo "downloading $url (once for all boxes, into vagrant/files/)"
    curl -fsSL --retry 3 -o "$tgz.part" "$url"
    curl -fsSL --retry 3 -o "$tgz.sha512" "$url.sha512"
    mv "$tgz.part" "$tgz"
  fi
  if [ -s "$tgz.sha512" ]; then
    local want have
    want="$(sha512_of_release_file "$tgz.sha512")" || { echo "cannot read $tgz.sha512" >&2; return 1; }
    have="$(sha512sum "$tgz" | cut -d' ' -f1)"
    if [ "$want" != "$have" ]; then
      echo "$tgz does not match $tgz.sha512: remove both and provision again" >&2
      return 1
    fi
  else
    echo "WARNING: $tgz has no .sha512 beside it (placed by hand?): not verified" >&2
  fi
  if [ ! -x "/opt/${KAFKA_NAME}/bin/kafka-server-start.sh" ]; then
    tar -xzf "$tgz" -C /opt
  fi
  ln -sfn "/opt/${KAFKA_NAME}" /opt/kafka
}

install_kafka() {
  apt_install openjdk-17-jre-headless curl ca-certificates python3-venv
  fetch_kafka
  id kafka >/dev/null 2>&1 || useradd --system --home-dir /var/lib/kafka --shell /usr/sbin/nologin kafka
  install -d -o kafka -g kafka /var/lib/kafka /var/log/kafka
  install -d /etc/kafka
}

# format_storage ROLE_DIR: format the KRaft log directory once, with the cluster's id.
format_storage() {
  if [ ! -f "$1/meta.properties" ]; then
    sudo -u kafka env LOG_DIR=/var/log/kafka /opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
      -t "$KAFKA_CLUSTER_ID" -c /etc/kafka/server.properties
  fi
}

# kafka_unit HEAP: the systemd unit (both roles read /etc/kafka/server.properties), enabled and (re)started.
kafka_unit() {
  cat > /etc/systemd/system/kafka.service <<UNIT
[Unit]
Description=Apache Kafka ${KAFKA_VERSION} (KRaft, /etc/kafka/server.properties)
After=network-online.target
Wants=network-online.target

[Service]
User=kafka
Group=kafka
Environment="KAFKA_HEAP_OPTS=-Xms128m -Xmx$1"
Environment=LOG_DIR=/var/log/kafka
ExecStart=/opt/kafka/bin/kafka-server-start.sh /etc/kafka/server.properties
Restart=on-failure
RestartSec=5
LimitNOFILE=100000
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable kafka.service
  systemctl restart kafka.service
}

# wait_port HOST PORT SECONDS
wait_port() {
  local i
  for ((i = 0; i < $3; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "nothing listens on $1:$2 after $3 s" >&2
  return 1
}

# /opt/pseidon-tools: python with confluent-kafka, for /vagrant/scripts/create_topic.sh and test-kafka.py.
install_tools() {
  if [ ! -x /opt/pseidon-tools/bin/python ]; then python3 -m venv /opt/pseidon-tools; fi
  /opt/pseidon-tools/bin/pip install -q --upgrade pip
  /opt/pseidon-tools/bin/pip install -q 'confluent-kafka>=2.4'
}
