"""Fixtures of the offset-store tests under tests/integration/core/ (the suite's own are in tests/conftest.py)."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.config import RedisSettings
from pseidon_dagster.core.lease import Lease
from pseidon_dagster.core.offsets import OffsetStore, connect
from tests.conftest import REDIS_PORT

LEASED_LOG = "clicks"  # the LOG of the modules that ask for `lease`


@pytest.fixture
def ostore(redis_client, group) -> OffsetStore:
    """An offset store on the loopback Redis, built from RedisSettings (test_offset_store_cluster.py puts it on a
    Redis Cluster)."""
    return OffsetStore(connect(RedisSettings(hosts=(("127.0.0.1", REDIS_PORT),))), group)


@pytest.fixture
def lease(ostore):
    """The lease of log "clicks" on `ostore`, held by owner run-1 and released after the test."""
    held = Lease.acquire(ostore, LEASED_LOG, owner="run-1", ttl_s=30)
    yield held
    held.release()
