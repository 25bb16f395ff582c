"""ingest_job launched through Dagster against the real servers: materializations with their metadata, check
results, the kafka_topic observation, the failure drill (nothing committed, the retry replays without duplicates),
and the sensor -> run -> quiet tick loop."""
from __future__ import annotations

import collections
import shutil
from pathlib import Path

import dagster as dg

from pseidon_dagster.core.partitioning import FileName, hour_key
from pseidon_dagster.defs.ingest.checks import recorded_files, verify_continuity, verify_record_counts
from pseidon_dagster.defs.ingest.constants import (
    HIVE_TABLE,
    INGEST_OP,
    KAFKA_TOPIC,
    LAKE_FILES,
    LOG_TAG,
    OFFSET_CONTINUITY,
    RECORD_COUNTS,
    RESOURCE_KEY,
)
from pseidon_dagster.defs.ingest.partitions import logs
from tests.conftest import read_lines
from tests.integration.core.test_ingest import BASE_TS, HOUR, add_log, make_messages
from tests.integration.defs.test_sensor import apply_partitions, requested, tick
from tests.unit.defs.test_ingest_definitions import JOB


def run(instance, resource, log, fail_before_commit=False) -> dg.ExecuteInProcessResult:
    if log not in instance.get_dynamic_partitions(logs.name):
        instance.add_dynamic_partitions(logs.name, [log])
    return JOB.execute_in_process(
        instance=instance, partition_key=log, resources={RESOURCE_KEY: resource}, raise_on_error=False,
        run_config={"ops": {INGEST_OP: {"config": {"fail_before_commit": fail_before_commit}}}})


def materializations(result, key=LAKE_FILES) -> dict[str, dg.AssetMaterialization]:
    out = {}
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            if mat.asset_key == key:
                out[str(mat.partition)] = mat
    return out


def check_evaluations(instance, name) -> dict[str, object]:
    key = dg.AssetCheckKey(LAKE_FILES, name)
    return {r.partition: r for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=100)}


def expected_hours(msgs) -> set[str]:
    return {hour_key(int(v.split(b"|")[0]) // HOUR) for _, v in msgs}


def test_a_run_materializes_each_hour_it_wrote_with_metadata_and_checks(
        pseidon, instance, settings, log_table, kafka, group, redis_client):
    topic = kafka.topic(3)
    spec = add_log(log_table, group, topic)
    msgs = make_messages(600, hours=3) + [(0, b"garbage-without-ts"), (1, None)]
    kafka.produce(topic, msgs)

    result = run(instance, pseidon, topic)
    assert result.success
    assert result.dagster_run.tags[LOG_TAG] == topic  # run() gives no tag: the partitioned config adds it

    hours = expected_hours(msgs[:600])
    keys = {f"{h}|{topic}" for h in hours}
    assert set(instance.get_materialized_partitions(LAKE_FILES)) == keys
    mats = materializations(result)
    assert set(mats) == keys
    total = 0
    for _key, mat in mats.items():
        md = {k: v.value for k, v in mat.metadata.items()}
        # the hour's own numbers
        assert md["dagster/row_count"] == md["records"] > 0
        assert md["files"] == len(md["files_detail"]) == 3
        assert md["bytes"] == sum(Path(f["path"]).stat().st_size for f in md["files_detail"])
        assert md["offset_ranges"] == "p0 [0, 201)  p1 [0, 201)  p2 [0, 200)"
        total += md["records"]
        # the run's numbers
        assert (md["read"], md["written"], md["filtered"], md["quarantined"]) == (602, 600, 1, 1)
        assert md["run_offsets"] == "p0 [0, 201)  p1 [0, 201)  p2 [0, 200)"
        assert md["lag_after"] == 0 and md["throughput_msgs_per_s"] > 0 and md["run_files"] == 3 * len(hours) + 1
        assert md["replayed"] is False and md["plan_id"]
    assert total == 600
    assert materializations(result, HIVE_TABLE) == {}  # no hive_url on this log

    for name in (OFFSET_CONTINUITY, RECORD_COUNTS):
        evals = check_evaluations(instance, name)
        assert set(evals) == keys
        assert all(r.status.value == "SUCCEEDED" for r in evals.values()), name

    obs = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=KAFKA_TOPIC, asset_partitions=[topic]), limit=5)
    assert len(obs.records) == 1
    omd = obs.records[0].asset_observation.metadata
    assert omd["committed_offsets"].value == {"0": 201, "1": 201, "2": 200}
    assert redis_client.get(f"/{group}/offsets/{topic}/0") == "201"

    # the check functions re-verify a partition from the files on disk (what "execute check" does in the UI)
    some = sorted(keys)[0]
    hour = min(int(v.split(b"|")[0]) // HOUR for _, v in msgs[:600])
    assert verify_continuity(settings, spec, hour).passed
    assert verify_record_counts(settings, spec, hour, recorded_files(instance, some)).passed

    # a second run with nothing new: succeeds, materializes nothing, and the next plan chains on this one
    again = run(instance, pseidon, topic)
    assert again.success and materializations(again) == {}
    kafka.produce(topic, make_messages(30, hours=1, start=600))
    third = run(instance, pseidon, topic)
    assert third.success
    assert all(r.status.value == "SUCCEEDED" for r in check_evaluations(instance, OFFSET_CONTINUITY).values())
    md = next(iter(materializations(third).values())).metadata
    assert md["run_offsets"].value == "p0 [201, 211)  p1 [201, 211)  p2 [200, 210)"


def test_overlapping_files_fail_the_continuity_check(pseidon, instance, settings, log_table, kafka, group):
    topic = kafka.topic(1)
    spec = add_log(log_table, group, topic)
    kafka.produce(topic, [(0, f"{BASE_TS + i}|m{i}".encode()) for i in range(20)])
    assert run(instance, pseidon, topic).success
    hour = BASE_TS // HOUR
    (f,) = [p for p in Path(settings.data_dir).rglob(f"{topic}-*.gz")]
    name = FileName.parse(f.name)
    dup = FileName(name.log, name.hour, name.partition, name.start + 5, name.end + 5, name.ext)
    shutil.copy(f, f.parent / str(dup))  # the same records again under an overlapping range
    outcome = verify_continuity(settings, spec, hour)
    assert not outcome.passed and outcome.severity == dg.AssetCheckSeverity.ERROR
    assert "overlapping ranges [5, 20)" in outcome.description
    counts = verify_record_counts(settings, spec, hour, recorded_files(instance, f"{hour_key(hour)}|{topic}"))
    assert not counts.passed and "no run reported" in counts.description


def test_failure_before_commit_leaves_redis_unchanged_and_the_retry_adds_no_duplicates(
        pseidon, instance, settings, log_table, kafka, store, group, redis_client):
    topic = kafka.topic(3)
    add_log(log_table, group, topic)
    msgs = make_messages(900, hours=4)
    kafka.produce(topic, msgs)
    before = {k: redis_client.get(k) for k in redis_client.scan_iter(match=f"/{group}/offsets/*")}

    failed = run(instance, pseidon, topic, fail_before_commit=True)
    assert not failed.success
    assert "injected failure before commit" in str(failed.all_events)
    assert {k: redis_client.get(k) for k in redis_client.scan_iter(match=f"/{group}/offsets/*")} == before == {}
    plan = store.load_plan(topic)
    assert plan is not None and plan.messages == 900
    assert instance.get_materialized_partitions(LAKE_FILES) == set()  # nothing reported for uncommitted data
    root = Path(settings.data_dir) / "lake" / "raw" / topic
    first_files = sorted(p.name for p in root.rglob("*.gz"))
    assert first_files  # published before the failure ...

    retry = run(instance, pseidon, topic)  # what Dagster's run retry launches
    assert retry.success
    md = next(iter(materializations(retry).values())).metadata
    assert md["replayed"].value is True and md["plan_id"].value == plan.plan_id
    assert sorted(p.name for p in root.rglob("*.gz")) == first_files  # ... and overwritten by the replay
    lines = collections.Counter(line for p in root.rglob("*.gz") for line in read_lines(p))
    assert lines == collections.Counter(v for _, v in msgs)  # every message exactly once
    assert store.load_plan(topic) is None
    assert store.get(topic, [0, 1, 2]) == {0: 300, 1: 300, 2: 300}
    assert all(r.status.value == "SUCCEEDED" for r in check_evaluations(instance, RECORD_COUNTS).values())


def test_sensor_tick_then_its_runs_then_a_quiet_tick(pseidon, instance, log_table, kafka, group):
    a, b = kafka.topic(3), kafka.topic(3)
    add_log(log_table, group, a)
    add_log(log_table, group, b)
    kafka.produce(a, make_messages(60, hours=2))
    kafka.produce(b, make_messages(30, hours=1))

    first = tick(instance, pseidon)
    apply_partitions(instance, first)
    assert set(requested(first)) == {a, b}
    for log, req in requested(first).items():
        res = JOB.execute_in_process(instance=instance, partition_key=req.partition_key, tags=req.tags,
                                     resources={RESOURCE_KEY: pseidon})
        assert res.success and res.dagster_run.tags[LOG_TAG] == log
    parts = instance.get_materialized_partitions(LAKE_FILES)
    assert {p.split("|")[1] for p in parts} == {a, b}

    second = tick(instance, pseidon, first.cursor)
    assert second.run_requests == []
    assert f"{a}: no lag" in second.skip_reason.skip_message
