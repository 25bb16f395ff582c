"""Where a record goes: the UTC hour of its event time, the partition directory and the file name.

Layout (kept from the original pseidon-hdfs):
    <base_partition>/<log_partition>/date=YYYYMMDD/hour=YYYYMMDDHH/<file>      (date_format = datehour)
    <base_partition>/<log_partition>/date=YYYYMMDD/<file>                      (date_format = date)
File names carry the log, the hour, the Kafka partition and the offset range [start, end) of the segment the file
belongs to:  <log>-YYYY-MM-DD-HH.p<partition>.o<start>-<end>.<ext>, the offsets zero-padded to 19 digits (any int64)
so that a listing sorts in offset order, as Kafka Connect and Secor do. Names without padding (earlier versions)
are read too.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

HOUR_MS = 3_600_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# Event times whose year has 4 digits: 1000-01-01 .. 9999-12-31 (UTC), as hour numbers since the epoch.
FIRST_HOUR = int((dt.datetime(1000, 1, 1, tzinfo=dt.timezone.utc) - _EPOCH).total_seconds()) // 3600
LAST_HOUR = int((dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone.utc) - _EPOCH).total_seconds()) // 3600

FILE_NAME = re.compile(
    r"^(?P<log>.+)-(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)-(?P<h>\d\d)\.p(?P<partition>\d+)"
    r"\.o(?P<start>\d+)-(?P<end>\d+)\.(?P<ext>[a-z0-9.]+)$"
)


def hour_start(hour: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(hours=hour)


@dataclasses.dataclass(frozen=True)
class FileName:
    log: str
    hour: int
    partition: int
    start: int
    end: int
    ext: str

    def __str__(self) -> str:
        t = hour_start(self.hour)
        return f"{self.log}-{t:%Y-%m-%d-%H}.p{self.partition}.o{self.start:019d}-{self.end:019d}.{self.ext}"

    @classmethod
    def parse(cls, name: str) -> FileName | None:
        m = FILE_NAME.match(name)
        if not m:
            return None
        t = dt.datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["h"]), tzinfo=dt.timezone.utc)
        return cls(m["log"], int((t - _EPOCH).total_seconds()) // 3600, int(m["partition"]), int(m["start"]),
                   int(m["end"]), m["ext"])


def partition_dir(root: str, log_partition: str, hour: int, hourly: bool = True) -> str:
    """<root>/<log_partition>/date=YYYYMMDD[/hour=YYYYMMDDHH]"""
    t = hour_start(hour)
    d = f"{root.rstrip('/')}/{log_partition.strip('/')}/date={t:%Y%m%d}"
    return f"{d}/hour={t:%Y%m%d%H}" if hourly else d


def hour_key(hour: int) -> str:
    """The Dagster hourly partition key for an hour: YYYY-MM-DD-HH:00."""
    return f"{hour_start(hour):%Y-%m-%d-%H}:00"
