"""Timed batches: files per (Kafka partition, hour) and latency from produce to commit under a steady stream, with
the default batching settings (:writer :rollover-size 115 MB, :rollover-timeout 10 min, no :sensor-min-lag).

    python bench/bench_batching.py [--rate 200] [--hours 2] [--message-bytes 200] [--partitions 4]

A simulated clock: every 30 simulated seconds (the sensor's interval) the stream's messages of those 30 s are
produced to a private tansu, the sensor's decision (core/lag.py: measure + decide, as ingest_sensor makes it) is
taken at that simulated time, and when it asks for a run the real ingest runs. Event times follow the simulated
clock (hence :allow-all-ts). Prints files per (partition, hour), runs, and the latency of each message from its
produce (simulated) time to the commit of its run: the simulated time of the tick that launched the run plus the
run's real duration (Dagster's own start-up of a run, ~4 s, is not included: bench/bench_noop_run.py).
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Stack  # noqa: E402

from pseidon_dagster.core import config as config_mod  # noqa: E402
from pseidon_dagster.core.ingest import ingest  # noqa: E402
from pseidon_dagster.core.kafka import KafkaSource  # noqa: E402
from pseidon_dagster.core.lag import decide, measure  # noqa: E402
from pseidon_dagster.core.logtable import validate_row  # noqa: E402
from pseidon_dagster.core.offsets import OffsetStore, connect  # noqa: E402
from pseidon_dagster.core.partitioning import FileName  # noqa: E402
from pseidon_dagster.devstack.services import create_topics, produce_sealed  # noqa: E402

TICK_S = 30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=200, help="messages per second")
    ap.add_argument("--hours", type=float, default=2.0, help="hours of event time")
    ap.add_argument("--message-bytes", type=int, default=200)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rollover-size", type=int, help=":writer :rollover-size in bytes (default: the default, 115 MB)")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pseidon-batching-"))
    stack = Stack(tmp)
    try:
        figures = run(args, tmp, stack)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def run(args, tmp: Path, stack: Stack) -> dict:
    settings = config_mod.from_mapping({
        "etl-group": "batching", "kafka-brokers": stack.bootstrap, "kafka-use-earliest": True,
        "redis-conf": {"host": f"127.0.0.1:{stack.redis_port}"}, "data-dir": str(tmp / "data"),
        "writer": {"allow-all-ts": True,
                   **({"rollover-size": args.rollover_size} if args.rollover_size else {})}})
    topic = "batching"
    create_topics(stack.bootstrap, [topic], args.partitions)
    spec = validate_row({"log": topic, "format": "txt:sep=pipe;ts=0", "output_format": "gzip",
                         "base_partition": "lake", "log_partition": "raw", "log_group": "batching"}, settings)
    store = OffsetStore(connect(settings.redis), settings.etl_group)
    kafka = KafkaSource(settings)
    # start at an hour boundary, so two hours of event time are two whole hours
    start = (int(time.time() * 1000) // 3_600_000 + 1) * 3_600_000
    pad = "x" * max(0, args.message_bytes - 40)
    produced_at: dict[tuple[int, int], int] = {}  # (partition, offset) -> simulated produce time
    next_offset = collections.Counter()
    waiting = None
    runs = []
    latencies = []
    sim = start
    end = start + int(args.hours * 3_600_000)
    i = 0
    while sim < end:
        batch = []
        for k in range(args.rate * TICK_S):
            ts = sim + k * 1000 // args.rate
            p = i % args.partitions
            batch.append((p, f"{ts}|m{i}|{pad}".encode()))
            produced_at[(p, next_offset[p])] = ts
            next_offset[p] += 1
            i += 1
        produce_sealed(stack.bootstrap, topic, batch)
        # tansu's high watermark counts the sealing batch: one record per partition, from the next burst on
        sim += TICK_S * 1000
        d = decide(measure(topic, kafka, store), settings, sim, waiting)
        waiting = d.waiting_since_ms
        if d.run:
            t0 = time.monotonic()
            result = ingest(settings, spec, store)
            run_ms = int((time.monotonic() - t0) * 1000)  # the run's real duration counts in the latency
            runs.append({"at_s": (sim - start) // 1000, "read": result.read, "run_s": run_ms / 1000,
                         "reason": d.reason})
            for p, (s, e) in result.offsets.items():
                latencies += [sim + run_ms - produced_at[(p, o)] for o in range(s, e) if (p, o) in produced_at]
            waiting = None
    files = collections.Counter()
    sizes = []
    for f in (tmp / "data" / "lake" / "raw").rglob("*.gz"):
        n = FileName.parse(f.name)
        files[(n.partition, n.hour)] += 1
        sizes.append(n.end - n.start)  # messages per file
    full_hours = {h for _, h in files if start // 3_600_000 <= h < end // 3_600_000}
    per = [files[(p, h)] for p in range(args.partitions) for h in sorted(full_hours)]
    return {
        "rate_msg_per_s": args.rate, "hours": args.hours, "message_bytes": args.message_bytes,
        "partitions": args.partitions, "runs": len(runs),
        "files_per_partition_hour": {"max": max(per), "median": statistics.median(per)},
        "latency_s": {"median": statistics.median(latencies) / 1000, "max": max(latencies) / 1000},
        "run_s_max": max(r["run_s"] for r in runs), "rollover_size": settings.writer.rollover_size,
        "messages_per_file_median": statistics.median(sizes),
        "rollover_timeout_s": settings.max_wait_ms / 1000, "first_runs": runs[:3],
    }


if __name__ == "__main__":
    sys.exit(main())
