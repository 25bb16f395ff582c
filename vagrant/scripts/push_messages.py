#!/usr/bin/env python3
"""push_messages.py N TOPIC [BROKERS]: send N comma-separated messages `<ts_ms>,<i>,hello` (confluent-kafka)."""
import sys
import time

from confluent_kafka import Producer

n, topic = int(sys.argv[1]), sys.argv[2]
brokers = sys.argv[3] if len(sys.argv) > 3 else "192.168.4.40:9092,192.168.4.41:9092,192.168.4.42:9092"
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
now = int(time.time() * 1000)
for i in range(n):
    p.produce(topic, f"{now},{i},hello".encode())
    p.poll(0)
p.flush()
print(f"sent {n} messages to {topic}")
