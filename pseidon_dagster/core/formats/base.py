"""Parser protocol and the factory that picks an implementation by descriptor type."""
from __future__ import annotations

from typing import Any, Callable, Protocol

from .descriptor import Descriptor, DescriptorError, parse_descriptor


class Parser(Protocol):
    type: str

    def line(self, value: bytes) -> tuple[int, bytes]: ...

    def row(self, value: bytes) -> tuple[int, Any]: ...


def build_parser(descriptor: str | Descriptor, *, schema_registry_url: str | None = None,
                 now_ms: Callable[[], int] | None = None) -> Parser:
    """A parser for one descriptor. Raises DescriptorError for any invalid descriptor; never contacts the network
    (avro-txt reads the schema registry per unseen schema id, when messages arrive).

    now_ms is the clock of `ts=-1` (default: the wall clock); the ingest passes the plan's creation time so that a
    replayed plan gives the same hours."""
    d = descriptor if isinstance(descriptor, Descriptor) else parse_descriptor(descriptor)
    if d.type == "txt":
        from .txt import TxtParser

        return TxtParser(d, now_ms=now_ms)
    if d.type == "json":
        from .jsonfmt import JsonParser

        return JsonParser(d, now_ms=now_ms)
    if d.type == "avro-txt":
        from .avro import AvroTxtParser

        return AvroTxtParser(d, schema_registry_url=schema_registry_url, now_ms=now_ms)
    raise DescriptorError(f"unknown format type {d.type!r}")
