"""HiveCatalog against the Spark Thrift Server, edge cases: a table in a database that does not exist, registering
nothing, registering without fixing locations (a partition that points elsewhere stays there) and DESCRIBE's column
list of a partitioned table."""
from __future__ import annotations

import pytest

from pseidon_dagster.core.hive import describe_columns


@pytest.mark.hive
def test_registration_without_fixing_locations_leaves_a_moved_partition_alone(hive_catalog, hive_db, tmp_path):
    assert hive_catalog.table_exists(f"{hive_db}_missing", "t") is False
    hive_catalog.create_table(hive_db, "t", [("ts", "bigint"), ("msg", "string")], ["dt", "hr"], "STORED AS TEXTFILE",
                              location=f"file://{tmp_path}/t")
    assert hive_catalog.add_partitions(hive_db, "t", []) == []
    first, other = f"file://{tmp_path}/t/a", f"file://{tmp_path}/t/b"
    hive_catalog.add_partitions(hive_db, "t", [({"dt": "20261120", "hr": "2026112007"}, first)])

    added = hive_catalog.add_partitions(hive_db, "t", [({"dt": "20261120", "hr": "2026112007"}, other)],
                                        fix_locations=False)

    assert added == ["dt=20261120/hr=2026112007"]
    rows = hive_catalog.execute(f"DESCRIBE FORMATTED `{hive_db}`.`t` PARTITION (dt='20261120', hr='2026112007')",
                                fetch=True)
    location = next(str(r[1]).strip() for r in rows if str(r[0]).strip().rstrip(":").lower() == "location")
    assert location.rstrip("/").endswith("/t/a")
    # DESCRIBE FORMATTED: data columns only, without the partition columns and the detailed sections
    assert describe_columns(rows) == [("ts", "bigint"), ("msg", "string")]
