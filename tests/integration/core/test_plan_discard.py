"""Dropping a log's plan in flight (`offsets reset`, core/ingest/run.py discard_plan) against the loopback Redis:
the temporary files of its attempts go, the plan and its state go, and the files it published stay and are listed."""
from __future__ import annotations

from pseidon_dagster.core.ingest.run import discard_plan
from pseidon_dagster.core.model import Plan

LOG = "clicks"


def test_a_dropped_plan_takes_its_temporary_files_and_lists_what_it_published(ostore, lease, redis_client, tmp_path):
    hour = tmp_path / "raw" / "date=20261120" / "hour=2026112007"
    hour.mkdir(parents=True)
    tmp1, tmp2, pub_b, pub_a = (hour / ".x.tmp", hour / ".y.tmp", hour / "b.gz", hour / "a.gz")
    for p in (tmp1, tmp2, pub_b, pub_a):
        p.write_bytes(b"x")
    ostore.save_plan(Plan(LOG, {0: (0, 9)}, 1, "p1"), lease)
    ostore.record_paths(LOG, lease, temps=[str(tmp1), str(tmp2), str(hour / ".gone.tmp")],
                        finals=[str(pub_b), str(pub_a), str(hour / "never-renamed.gz"), "s3://bucket/raw/c.gz"])
    out = discard_plan(ostore, LOG)
    assert out == {"dropped_plan": "p1", "files_of_dropped_plan": [str(pub_a), str(pub_b), "s3://bucket/raw/c.gz"]}
    assert sorted(p.name for p in hour.iterdir()) == ["a.gz", "b.gz"]
    assert ostore.load_plan(LOG) is None and ostore.manifest(LOG) == (set(), set())


def test_without_a_plan_leftover_temporary_files_still_go(ostore, lease, tmp_path):
    tmp = tmp_path / ".x.tmp"
    tmp.write_bytes(b"x")
    ostore.record_paths(LOG, lease, temps=[str(tmp)])
    assert discard_plan(ostore, LOG) == {}
    assert not tmp.exists() and ostore.manifest(LOG) == (set(), set())


def test_a_plan_that_published_nothing_lists_nothing(ostore, lease):
    ostore.save_plan(Plan(LOG, {0: (0, 9)}, 1, "p2"), lease)
    assert discard_plan(ostore, LOG) == {"dropped_plan": "p2", "files_of_dropped_plan": []}
