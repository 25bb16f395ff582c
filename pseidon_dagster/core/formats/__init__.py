"""Input format descriptors (the `format` column) and the message parsers they build.

Grammar (see README "Format descriptors"):  <type>:<key>=<value>;<key>=<value>...

A parser is built once per run and called once per message:
    parser.line(value: bytes) -> (event_ts_ms: int, line: bytes ending in b"\\n")   for text outputs
    parser.row(value: bytes)  -> (event_ts_ms: int, row)                             for Parquet
A message that cannot be parsed raises MessageError(reason); a bad descriptor raises DescriptorError.
"""
from __future__ import annotations

from .descriptor import Descriptor, DescriptorError, MessageError, parse_descriptor
from .base import Parser, build_parser

__all__ = ["Descriptor", "DescriptorError", "MessageError", "Parser", "build_parser", "parse_descriptor"]
