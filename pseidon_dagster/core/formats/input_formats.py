"""The input formats (a descriptor's type): one table of property validation and parser factory per type."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .avro import AvroSpec, AvroTxtParser
from .descriptor import Descriptor, DescriptorError, split_descriptor
from .jsonfmt import JsonParser, JsonSpec
from .txt import TxtParser, TxtSpec


class Parser(Protocol):
    type: str

    def line(self, value: bytes) -> tuple[int, bytes]: ...

    def row(self, value: bytes) -> tuple[int, Any]: ...


@dataclasses.dataclass(frozen=True)
class InputFormat:
    """One descriptor type: how its properties are checked and how its parser is built."""

    name: str
    spec: Callable[[Descriptor], Any]  # descriptor -> the type's compiled settings; raises DescriptorError
    parser: Callable[..., Parser]  # (descriptor, *, schema_registry_url, schema_registry_config, now_ms) -> Parser


def _no_registry(parser_class) -> Callable[..., Parser]:
    """The parser factory of a type that reads no schema registry."""
    return lambda d, *, schema_registry_url=None, schema_registry_config=None, now_ms=None: parser_class(
        d, now_ms=now_ms)


INPUT_FORMATS: dict[str, InputFormat] = {f.name: f for f in (
    InputFormat("txt", TxtSpec.from_descriptor, _no_registry(TxtParser)),
    InputFormat("json", JsonSpec.from_descriptor, _no_registry(JsonParser)),
    InputFormat("avro-txt", AvroSpec.from_descriptor, AvroTxtParser),
)}


def input_format(name: str) -> InputFormat:
    """The table's entry for a type; DescriptorError if there is none."""
    try:
        return INPUT_FORMATS[name]
    except KeyError:
        raise DescriptorError(f"unknown format type {name!r}") from None


def parse_descriptor(text: str | bytes | None) -> Descriptor:
    """Parse and fully validate a descriptor (every property of its type); raise DescriptorError if it is invalid."""
    d = split_descriptor(text, INPUT_FORMATS)
    input_format(d.type).spec(d)
    return d


def build_parser(descriptor: str | Descriptor, *, schema_registry_url: str | None = None,
                 schema_registry_config: Mapping[str, Any] | None = None,
                 now_ms: Callable[[], int] | None = None) -> Parser:
    """A parser for one descriptor. Raises DescriptorError for any invalid descriptor; never contacts the network
    (avro-txt reads the schema registry per unseen schema id, when messages arrive). schema_registry_config:
    :avro-schema-registry-config (basic auth, TLS, proxy of the registry client).

    now_ms is the clock of `ts=-1` (default: the wall clock); the ingest passes the plan's creation time so that a
    replayed plan gives the same hours."""
    d = descriptor if isinstance(descriptor, Descriptor) else parse_descriptor(descriptor)
    return input_format(d.type).parser(d, schema_registry_url=schema_registry_url,
                                       schema_registry_config=schema_registry_config, now_ms=now_ms)
