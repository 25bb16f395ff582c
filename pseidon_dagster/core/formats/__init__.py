"""Input format descriptors (the `format` column) and the message parsers they build. See docs/formats.md.

Grammar:  <type>:<key>=<value>;<key>=<value>...   with type txt, json or avro-txt (the table in input_formats.py).

A parser is built once per run and called once per message:
    parser.line(value: bytes) -> (event_ts_ms: int, line: bytes ending in b"\\n")   for text outputs
    parser.row(value: bytes)  -> (event_ts_ms: int, row)                             for Parquet
        txt: list[str] of the selected fields; json, avro-txt: dict of field name -> value.
Errors:
- DescriptorError: the descriptor is invalid (parse_descriptor / build_parser; never anything else for any text).
- MessageError(reason): one message cannot be parsed (never anything else for any bytes); quarantine it.
- RegistryUnavailable: avro-txt cannot reach its schema registry; fail the run, commit nothing.
"""
from __future__ import annotations

from .descriptor import Descriptor, DescriptorError, MessageError
from .input_formats import INPUT_FORMATS, InputFormat, Parser, build_parser, input_format, parse_descriptor
from .registry import RegistryUnavailable

__all__ = ["INPUT_FORMATS", "Descriptor", "DescriptorError", "InputFormat", "MessageError", "Parser",
           "RegistryUnavailable", "build_parser", "input_format", "parse_descriptor"]
