#!/usr/bin/env python3
"""test-kafka.py: is the Kafka cluster working? Lists the brokers, creates a fresh topic test-kafka-<time>, sends
--messages messages round-robin over its partitions and reads them back (by assign(), from the start), checking that
every message came back exactly once. Exit 0 when they did, 1 otherwise.

On a cluster that has just come up the topic creation may be refused for a while (no controller yet, brokers still
registering); it is retried a few times before the script gives up. Brokers: --brokers or KAFKA_BROKERS, default the
Vagrant cluster's broker1..3.
"""
import argparse
import os
import sys
import time

import cluster


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="test-kafka.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000, help="messages to send and read back (default 1000)")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--replication", type=int, default=None,
                    help=f"replication factor (env KAFKA_REPLICATION, else {cluster.VAGRANT['KAFKA_REPLICATION']})")
    ap.add_argument("--topic", help="topic to use (default: a new test-kafka-<time>-<pid>)")
    ap.add_argument("--timeout", type=float, default=60.0)
    cluster.add_brokers_arg(ap)
    args = ap.parse_args(argv)
    cluster.ensure_confluent_kafka()
    topic = args.topic or f"test-kafka-{int(time.time())}-{os.getpid()}"
    try:
        md = cluster.admin(args.brokers).list_topics(timeout=15)
        brokers = ", ".join(f"{b.id}@{b.host}:{b.port}" for b in sorted(md.brokers.values(), key=lambda b: b.id))
        print(f"brokers: {brokers}")
        created = cluster.create_topic(args.brokers, topic, args.partitions, args.replication)
        print(f"topic {topic}: {'created' if created else 'exists'}")
        before = len(cluster.read_all(args.brokers, topic, 0, 10)) if not created else 0
        sent = [f"test-kafka {topic} {i}".encode() for i in range(args.messages)]
        t0 = time.monotonic()
        cluster.produce(args.brokers, topic, sent)
        got = cluster.read_all(args.brokers, topic, before + len(sent), args.timeout)
    except Exception as e:  # noqa: BLE001 - one clear line: the cluster is not working
        print(f"test-kafka.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    wanted = set(sent)
    mine = [v for v in got if v in wanted]
    if sorted(mine) != sorted(sent) or len(got) != before + len(sent):
        print(f"test-kafka.py: FAILED: sent {len(sent)} messages to {topic}, read back {len(mine)} of them "
              f"({len(set(mine))} distinct, {len(got)} messages in the topic)", file=sys.stderr)
        return 1
    print(f"OK: sent and read back {len(sent)} messages via {topic} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
