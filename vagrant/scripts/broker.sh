#!/usr/bin/env bash
# Kafka broker N (argument), registered in zookeeper1.
set -euo pipefail
ID="${1:-1}"
apt-get update -q && apt-get install -y -q openjdk-17-jre-headless curl
KAFKA=/opt/kafka
if [ ! -d "$KAFKA" ]; then
  echo "Place a Kafka 3.x tarball at /vagrant/vagrant/files/kafka.tgz (no download from here)"; exit 1
fi
sed -i "s/^broker.id=.*/broker.id=${ID}/; s#^zookeeper.connect=.*#zookeeper.connect=192.168.4.2:2181#" \
  "$KAFKA/config/server.properties"
echo "listeners=PLAINTEXT://192.168.4.$((39 + ID)):9092" >> "$KAFKA/config/server.properties"
nohup "$KAFKA/bin/kafka-server-start.sh" "$KAFKA/config/server.properties" > /var/log/kafka.log 2>&1 &
