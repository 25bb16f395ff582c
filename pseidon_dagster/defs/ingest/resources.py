"""PseidonResource: the one resource of this domain. It wraps the plain-Python core and re-reads pseidon.edn on
every call, so a config change reaches the next sensor tick and the next run without a code-location reload."""

import contextlib
import dataclasses
from collections.abc import Iterator

import dagster as dg

from ...core import config as config_mod
from ...core.config import Settings
from ...core.kafka import KafkaSource
from ...core.logtable import LogTable
from ...core.offsets import OffsetStore, connect
from .constants import RESOURCE_KEY


class PseidonResource(dg.ConfigurableResource):
    """pseidon.edn and the services it names: the pseidon_logs table, Redis offsets and Kafka.

    config_path: the pseidon.edn to read. Unset: $PSEIDON_CONF, else /opt/pseidon-etl/conf/pseidon.edn (the
    original's location), resolved on every call.
    """

    config_path: str | None = None

    def settings(self) -> Settings:
        return config_mod.load(self.config_path or None)

    def log_table(self, settings: Settings | None = None) -> LogTable:
        return LogTable.for_settings(settings or self.settings())

    def store(self, settings: Settings | None = None) -> OffsetStore:
        s = settings or self.settings()
        return OffsetStore(connect(s.redis), s.etl_group)

    def kafka(self, settings: Settings | None = None) -> KafkaSource:
        return KafkaSource(settings or self.settings())

    @contextlib.contextmanager
    def session(self, settings: Settings | None = None) -> Iterator["Session"]:
        """Settings, log table and offset store for one tick or one run; connections are closed at the end."""
        s = settings or self.settings()
        table = self.log_table(s)
        store = self.store(s)
        try:
            yield Session(s, table, store, self.kafka(s))
        finally:
            table.engine.dispose()
            with contextlib.suppress(Exception):
                store.r.close()


@dataclasses.dataclass
class Session:
    settings: Settings
    table: LogTable
    store: OffsetStore
    kafka: KafkaSource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={RESOURCE_KEY: PseidonResource()})
