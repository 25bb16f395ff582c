#!/usr/bin/env python3
"""push-kafka-messages.py N TOPIC MESSAGE: send N messages to TOPIC (confluent-kafka), round-robin over its partitions.

MESSAGE is sent as given, after these placeholders are filled in per message:
    {i}       the message's number, 0 .. N-1
    {ts}      the time of sending in epoch milliseconds     {ts_sec}  the same in seconds
so `push-kafka-messages.py 1000 test1 '{ts},{i},hello'` fits the sample row's format `txt:sep=comma;ts=0`.

The topic must exist (create_topic.sh / create_topic_remote.sh). Brokers: --brokers or KAFKA_BROKERS, default the
Vagrant cluster's broker1..3.
"""
import argparse
import sys
import time

import cluster


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="push-kafka-messages.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, help="how many messages")
    ap.add_argument("topic")
    ap.add_argument("message", help="the message text, with optional {i}, {ts}, {ts_sec} placeholders")
    cluster.add_brokers_arg(ap)
    args = ap.parse_args(argv)
    if args.n < 0:
        ap.error("N must be >= 0")
    cluster.ensure_confluent_kafka()
    now_ms = int(time.time() * 1000)
    try:
        values = [args.message.format(i=i, ts=now_ms, ts_sec=now_ms // 1000).encode() for i in range(args.n)]
    except (KeyError, IndexError, ValueError) as e:
        ap.error(f"MESSAGE {args.message!r}: bad placeholder ({e}); use {{i}}, {{ts}}, {{ts_sec}} (and {{{{ }}}} "
                 "for literal braces)")
    t0 = time.monotonic()
    try:
        counts = cluster.produce(args.brokers, args.topic, values)
    except RuntimeError as e:
        print(f"push-kafka-messages.py: {e}", file=sys.stderr)
        return 1
    spread = ", ".join(f"p{p}: {c}" for p, c in sorted(counts.items()))
    print(f"sent {args.n} messages to {args.topic} in {time.monotonic() - t0:.1f}s ({spread or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
