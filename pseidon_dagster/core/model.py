"""The values the run's stages hand to each other and to the Dagster layer. No I/O here.

    LogSpec      one pseidon_logs row, validated and confined (logtable.validate_row makes it)
    Plan         what one run reads: per Kafka partition [start, end), with everything that decides file names and
                 bytes frozen in `params` (so a replay writes the same files)
    FileInfo     one published file
    Counts       read = written + filtered + quarantined, per run
    IngestResult what a run staged, registered and committed
"""
from __future__ import annotations

import dataclasses
import json

QUARANTINE_EXT = "jsonl.gz"
DEFAULT_QUARANTINE = "quarantine"  # a row's quarantine directory when its column is empty


@dataclasses.dataclass(frozen=True)
class LogSpec:
    log: str
    format: str
    output_format: str  # normalised: a name in output_formats.OUTPUT_FORMATS
    base_partition: str
    log_partition: str
    hive_table_name: str | None
    hive_url: str | None
    hive_user: str | None
    hive_password: str | None = dataclasses.field(repr=False, default=None)
    quarantine: str = DEFAULT_QUARANTINE
    log_group: str = "default"
    enabled: bool = True
    date_format: str = "datehour"
    retention_hours: int | None = None  # optional columns; unset: :retention-hours / :quarantine-retention-hours
    quarantine_retention_hours: int | None = None
    raw_output_format: str | None = None

    @property
    def hourly(self) -> bool:
        return self.date_format == "datehour"

    @property
    def topic(self) -> str:
        return self.log


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run reads: per Kafka partition [start, end)."""

    log: str
    ranges: dict[int, tuple[int, int]]
    created_ms: int
    plan_id: str
    lost: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    # Everything that decides file names and contents (format, resolved roots, cut rules, timestamp window, Parquet
    # schema), frozen at planning time so a replay writes exactly the same files even if the row or the config
    # changed meanwhile.
    params: dict = dataclasses.field(default_factory=dict)
    # How this plan's start offsets were chosen, per partition, when not simply the stored offset (shown to users).
    notes: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(e - s for s, e in self.ranges.values())

    def to_json(self) -> str:
        return json.dumps({
            "log": self.log, "created_ms": self.created_ms, "plan_id": self.plan_id,
            "ranges": {str(p): [s, e] for p, (s, e) in sorted(self.ranges.items())},
            "lost": {str(p): [s, e] for p, (s, e) in sorted(self.lost.items())},
            "params": self.params,
            "notes": {str(p): n for p, n in sorted(self.notes.items())},
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        d = json.loads(text)
        return cls(
            log=d["log"], created_ms=int(d["created_ms"]), plan_id=d["plan_id"],
            ranges={int(p): (int(s), int(e)) for p, (s, e) in d["ranges"].items()},
            lost={int(p): (int(s), int(e)) for p, (s, e) in d.get("lost", {}).items()},
            params=d.get("params", {}),
            notes={int(p): n for p, n in d.get("notes", {}).items()},
        )


@dataclasses.dataclass
class FileInfo:
    path: str
    kind: str  # "data" | "quarantine"
    hour: int
    partition: int
    start: int
    end: int
    records: int
    raw_bytes: int
    bytes: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Counts:
    """Message counts of a run. Every message read is exactly one of written, filtered (null value) or
    quarantined; `check()` is the one place that says so."""

    read: int = 0
    written: int = 0
    filtered: int = 0
    quarantined: int = 0

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.written += other.written
        self.filtered += other.filtered
        self.quarantined += other.quarantined

    def check(self) -> None:
        if self.read != self.written + self.filtered + self.quarantined:
            raise AssertionError(f"counts do not add up: read {self.read} != written {self.written} + filtered "
                                 f"{self.filtered} + quarantined {self.quarantined}")


@dataclasses.dataclass
class IngestResult:
    log: str
    plan_id: str | None = None
    replayed: bool = False
    read: int = 0
    written: int = 0
    filtered: int = 0
    quarantined: int = 0
    files: list[FileInfo] = dataclasses.field(default_factory=list)
    offsets: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    lost: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    committed: bool = False
    lag_after: int | None = None
    registered: list[str] = dataclasses.field(default_factory=list)
    quarantine_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    # Files an earlier attempt of the plan published that this attempt did not rewrite (deleted before commit).
    removed: list[str] = dataclasses.field(default_factory=list)
    notes: dict[int, str] = dataclasses.field(default_factory=dict)
    committed_ms: int | None = None
    # The row fields the plan froze (format, output_format, base_partition, log_partition, quarantine, date_format):
    # what the files were written with. No secrets.
    layout: dict = dataclasses.field(default_factory=dict)
    # The log's row as the plan froze it (a replay writes, and registers, what was planned). In memory only: it
    # holds the row's hive_password, so it is never serialised.
    spec: LogSpec | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def counts(self) -> Counts:
        return Counts(self.read, self.written, self.filtered, self.quarantined)

    def set_counts(self, c: Counts) -> None:
        c.check()
        self.read, self.written, self.filtered, self.quarantined = c.read, c.written, c.filtered, c.quarantined

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def data_files(self) -> list[FileInfo]:
        return [f for f in self.files if f.kind == "data"]

    @property
    def hours(self) -> list[int]:
        return sorted({f.hour for f in self.data_files})

    def to_dict(self) -> dict:
        return {
            "log": self.log, "plan_id": self.plan_id, "replayed": self.replayed,
            "read": self.read, "written": self.written, "filtered": self.filtered, "quarantined": self.quarantined,
            "files": [f.path for f in self.files], "file_count": len(self.files), "bytes": self.bytes,
            "offsets": {str(p): list(r) for p, r in sorted(self.offsets.items())},
            "lost": {str(p): list(r) for p, r in sorted(self.lost.items())},
            "seconds": round(self.seconds, 3), "committed": self.committed, "lag_after": self.lag_after,
            "registered": self.registered, "quarantine_reasons": self.quarantine_reasons,
            "removed": self.removed, "notes": {str(p): n for p, n in sorted(self.notes.items())},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # The full record (with every file's details), stored in Redis between the steps of a run and after its commit
    # until Dagster has reported it.
    def to_record(self) -> str:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "spec"}
        d["files"] = [f.to_dict() for f in self.files]
        d["offsets"] = {str(p): list(r) for p, r in self.offsets.items()}
        d["lost"] = {str(p): list(r) for p, r in self.lost.items()}
        d["notes"] = {str(p): n for p, n in self.notes.items()}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_record(cls, text: str) -> IngestResult:
        d = json.loads(text)
        d["files"] = [FileInfo(**f) for f in d.get("files", [])]
        d["offsets"] = {int(p): (int(s), int(e)) for p, (s, e) in d.get("offsets", {}).items()}
        d["lost"] = {int(p): (int(s), int(e)) for p, (s, e) in d.get("lost", {}).items()}
        d["notes"] = {int(p): n for p, n in d.get("notes", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
