#!/usr/bin/env python3
"""print-kafka-messages.py TOPIC N: read TOPIC from the start of every partition to its end and print each message,
one per line (confluent-kafka, by assign(): no consumer group is joined, nothing is committed).

N is the number of messages expected. The topic may still be filling up: reading goes on until N messages were read
and every partition is read to its end, or --timeout seconds passed. Exit 0 when exactly N were read, 1 otherwise
(with the count on stderr). Brokers: --brokers or KAFKA_BROKERS, default the Vagrant cluster's broker1..3.
"""
import argparse
import sys

import cluster


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="print-kafka-messages.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topic")
    ap.add_argument("n", type=int, help="number of messages expected")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for N messages (default 60)")
    ap.add_argument("--quiet", action="store_true", help="print only the count, not the messages")
    cluster.add_brokers_arg(ap)
    args = ap.parse_args(argv)
    cluster.ensure_confluent_kafka()
    out = sys.stdout.buffer

    def show(msg):
        if not args.quiet:
            out.write((msg.value() or b"") + b"\n")

    try:
        values = cluster.read_all(args.brokers, args.topic, args.n, args.timeout, on_message=show)
    except RuntimeError as e:
        print(f"print-kafka-messages.py: {e}", file=sys.stderr)
        return 1
    out.flush()
    if len(values) != args.n:
        print(f"print-kafka-messages.py: expected {args.n} messages in {args.topic}, read {len(values)} "
              f"(waited up to {args.timeout:.0f}s)", file=sys.stderr)
        return 1
    print(f"read {len(values)} messages from {args.topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
