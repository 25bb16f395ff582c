#!/usr/bin/env bash
# create_topic.sh TOPIC [PARTITIONS]  -- run inside a broker box
/opt/kafka/bin/kafka-topics.sh --bootstrap-server 192.168.4.40:9092 --create --if-not-exists \
  --topic "$1" --partitions "${2:-3}" --replication-factor 2
