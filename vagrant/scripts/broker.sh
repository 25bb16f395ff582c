#!/usr/bin/env bash
# broker1..3 (192.168.4.40-42): a Kafka broker in KRaft mode, node.id NODE_ID, PLAINTEXT://NODE_IP:9092, registered
# with the KRaft controller on zookeeper1 (bring zookeeper1 up first; `vagrant up` does). Topics default to 3
# partitions and replication 2; topics are not created automatically (create_topic.sh / create_topic_remote.sh).
# Environment from the Vagrantfile: NODE_IP, NODE_ID, CONTROLLER, KAFKA_* (see kafka-common.sh).
set -euo pipefail
: "${NODE_IP:?set by the Vagrantfile}" "${NODE_ID:?}" "${CONTROLLER:?}"
# shellcheck source-path=SCRIPTDIR source=kafka-common.sh
source /vagrant/scripts/kafka-common.sh

install_kafka
cat > /etc/kafka/server.properties <<PROPS
# Kafka broker ${NODE_ID} of the pseidon Vagrant cluster (written by /vagrant/scripts/broker.sh)
process.roles=broker
node.id=${NODE_ID}
controller.quorum.voters=100@${CONTROLLER}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://${NODE_IP}:9092
advertised.listeners=PLAINTEXT://${NODE_IP}:9092
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/var/lib/kafka/data
num.partitions=3
default.replication.factor=2
min.insync.replicas=1
offsets.topic.replication.factor=2
transaction.state.log.replication.factor=2
transaction.state.log.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
PROPS
install -d -o kafka -g kafka /var/lib/kafka/data
format_storage /var/lib/kafka/data
kafka_unit 512m
wait_port "$NODE_IP" 9092 180
install_tools
echo "broker${NODE_ID}: Kafka broker listening on ${NODE_IP}:9092 (systemctl status kafka)"
