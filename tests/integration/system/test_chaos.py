"""Chaos: real `pseidon-dagster ingest` processes and Dagster runs of ingest_job, killed with SIGKILL at random
moments -- mid-read, mid-write, between publishing and Hive registration, between registration and the commit --
and restarted after each kill with no manual step. At the end every produced message is in exactly one data file
or in the quarantine, no temporary file is left, the offsets equal the high watermarks, every hour's offset ranges
chain (offset_continuity) and Hive lists every hour.

PSEIDON_CHAOS_KILLS sets the number of kills (CI: 12). The full form:
    PSEIDON_CHAOS_KILLS=60 PSEIDON_CHAOS_MESSAGES=120000 make test PYTEST_ARGS=tests/integration/system/test_chaos.py
"""
from __future__ import annotations

import base64
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pseidon_dagster.core.hive import create_table_for
from pseidon_dagster.core.kafka import KafkaSource
from pseidon_dagster.defs.ingest.checks import verify_continuity
from tests.conftest import read_lines, write_conf
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log

KILLS = int(os.environ.get("PSEIDON_CHAOS_KILLS", "12"))
MESSAGES = int(os.environ.get("PSEIDON_CHAOS_MESSAGES", "24000"))
PARTITIONS = 4
SEED = int(os.environ.get("PSEIDON_CHAOS_SEED", str(int(time.time()))))

# A run pauses at each of these points, so a kill at a random moment often lands between two steps.
FAILPOINTS = "after-plan=0.2,after-publish=0.4,after-register=0.4,before-commit=0.3"

DAGSTER_RUN = """
import sys
import dagster as dg
from pseidon_dagster.definitions import build_defs
from pseidon_dagster.defs.ingest.constants import INGEST_JOB, RESOURCE_KEY
from pseidon_dagster.defs.ingest.partitions import logs
from pseidon_dagster.defs.ingest.resources import PseidonResource

home, conf, log = sys.argv[1:4]
instance = dg.DagsterInstance.from_config(home)
if log not in instance.get_dynamic_partitions(logs.name):
    instance.add_dynamic_partitions(logs.name, [log])
job = build_defs().resolve_job_def(INGEST_JOB)
result = job.execute_in_process(instance=instance, partition_key=log, raise_on_error=False,
                                resources={RESOURCE_KEY: PseidonResource(config_path=conf)})
sys.exit(0 if result.success else 1)
"""


def messages(n: int) -> tuple[list[tuple[int, bytes | None]], list[bytes], list[bytes]]:
    """n messages over 6 event hours, with a bad one every 997 and a null every 1499: (all, good, bad)."""
    out, good, bad = [], [], []
    for i in range(n):
        p = i % PARTITIONS
        if i % 997 == 500:
            v = f"not-a-timestamp|bad-{i}".encode()
            bad.append(v)
        elif i % 1499 == 700:
            v = None
        else:
            v = f"{BASE_TS + (i * 7919) % (6 * HOUR)}|m{i}|{'x' * (i % 50)}".encode()
            good.append(v)
        out.append((p, v))
    return out, good, bad


@pytest.mark.hive
def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path, settings, log_table, kafka, group, store,
                                                              hive_port, hive_db, hive_catalog):
    rng = random.Random(SEED)
    topic = kafka.topic(PARTITIONS)
    spec = add_log(log_table, group, topic, hive_url=f"//127.0.0.1:{hive_port}/{hive_db}", hive_table_name="t")
    create_table_for(settings, spec)
    produced, good, bad = messages(MESSAGES)
    kafka.produce(topic, produced)
    conf = write_conf(tmp_path / "chaos.edn", settings, **{
        "lease-ttl-ms": 2000, "max-offsets-per-partition": max(500, MESSAGES // PARTITIONS // 6),
        "writer": {"allow-all-ts": True, "rollover-size": 40_000}, "hive": {"retries": 1, "retry-backoff-ms": 100}})
    home = tmp_path / "dagster_home"
    home.mkdir()
    runner = tmp_path / "dagster_run.py"
    runner.write_text(DAGSTER_RUN)
    env = {**os.environ, "PSEIDON_FAILPOINTS": FAILPOINTS}
    cli = [sys.executable, "-m", "pseidon_dagster.cli", "ingest", topic, "--config", str(conf)]
    dagster = [sys.executable, str(runner), str(home), str(conf), topic]

    kills, runs, kinds = 0, 0, collections.Counter()
    deadline = time.monotonic() + 60 + KILLS * 20
    while kills < KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills in time (seed {SEED})"
        kind = "dagster" if rng.random() < 0.3 else "cli"
        proc = subprocess.Popen(dagster if kind == "dagster" else cli, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        runs += 1
        # once the process works on the log (it holds the lease), kill it at a random moment
        while proc.poll() is None and store.r.get(store.lease_key(topic)) is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            kinds[kind] += 1
        proc.wait()

    # then let runs finish, as the sensor would keep launching them
    high = {p: hi for p, (lo, hi) in KafkaSource(settings).watermarks(topic).items()}
    for _ in range(40):
        if store.get(topic, list(high)) == high and store.load_plan(topic) is None:
            break
        out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    assert store.get(topic, list(high)) == high and store.load_plan(topic) is None
    out = subprocess.run(dagster, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]

    data_root = Path(settings.data_dir) / "lake" / "raw" / topic
    data = [line for f in sorted(data_root.rglob("*.gz")) if not f.name.startswith(".") for line in read_lines(f)]
    assert collections.Counter(data) == collections.Counter(good), f"seed {SEED}"
    quarantined = [base64.b64decode(json.loads(line)["raw_base64"])
                   for f in sorted(Path(settings.data_dir).rglob("*.jsonl.gz")) for line in read_lines(f)]
    assert collections.Counter(quarantined) == collections.Counter(bad), f"seed {SEED}"
    assert [p for p in Path(settings.data_dir).rglob(".*") if p.is_file()] == []
    hours = {int(v.split(b"|")[0]) // HOUR for v in good}
    for h in sorted(hours):
        outcome = verify_continuity(settings, spec, h)
        assert outcome.passed, (h, outcome.description)
    assert len(hive_catalog.show_partitions(hive_db, "t")) == len(hours)
    assert hive_catalog.execute(f"SELECT count(*) FROM `{hive_db}`.`t`", fetch=True) == [(len(good),)]
    print(f"chaos: seed {SEED}, {runs} runs, {kills} kills ({dict(kinds)}), {len(good)} messages landed once, "
          f"{len(bad)} quarantined")
