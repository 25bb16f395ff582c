#!/usr/bin/env bash
# zookeeper1 (192.168.4.2). Kafka runs in KRaft mode, so there is no ZooKeeper any more: this box keeps the seed's
# name and address and runs what took ZooKeeper's place, the cluster's KRaft controller (process.roles=controller,
# node.id 100, listener CONTROLLER://192.168.4.2:9093) holding the cluster metadata; broker1..3 register with it.
# It also has the Kafka CLI (/opt/kafka/bin) and /opt/pseidon-tools for /vagrant/scripts/create_topic.sh.
# Environment from the Vagrantfile: NODE_IP, CONTROLLER, KAFKA_* (see kafka-common.sh).
set -euo pipefail
: "${NODE_IP:?set by the Vagrantfile}" "${CONTROLLER:?}"
# shellcheck source-path=SCRIPTDIR source=kafka-common.sh
source /vagrant/scripts/kafka-common.sh

install_kafka
cat > /etc/kafka/server.properties <<PROPS
# KRaft controller of the pseidon Vagrant cluster (written by /vagrant/scripts/zookeeper.sh)
process.roles=controller
node.id=100
controller.quorum.voters=100@${CONTROLLER}
controller.listener.names=CONTROLLER
listeners=CONTROLLER://${NODE_IP}:9093
listener.security.protocol.map=CONTROLLER:PLAINTEXT
log.dirs=/var/lib/kafka/controller
PROPS
install -d -o kafka -g kafka /var/lib/kafka/controller
format_storage /var/lib/kafka/controller
kafka_unit 384m
wait_port "$NODE_IP" 9093 120
install_tools
echo "zookeeper1: KRaft controller listening on ${NODE_IP}:9093 (systemctl status kafka)"
