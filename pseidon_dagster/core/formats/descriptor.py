"""Parsing of format descriptors: `<type>:<key>=<value>;...`.

Compatible with the original's descriptors, but lenient where it was needlessly strict: whitespace around the type,
keys and values is ignored, the type is case-insensitive, values may contain ':' and '=', and a trailing ':' in a
value is kept (`msg=1:` means "field 1 to the end", where the original silently read `msg=1`).
"""
from __future__ import annotations

import dataclasses

KNOWN_TYPES = ("txt", "json", "avro-txt")


class DescriptorError(ValueError):
    """The descriptor text is invalid; the message says what and where."""


class MessageError(ValueError):
    """One message could not be parsed; str() is the reason recorded in quarantine."""


@dataclasses.dataclass(frozen=True)
class Descriptor:
    type: str
    props: dict[str, str]
    text: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.props.get(key, default)


def parse_descriptor(text: str | None) -> Descriptor:
    if text is None or not str(text).strip():
        raise DescriptorError("empty format descriptor")
    text = str(text)
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KNOWN_TYPES:
        raise DescriptorError(f"unknown format type {kind!r} in {text!r}; expected one of {', '.join(KNOWN_TYPES)}")
    props: dict[str, str] = {}
    for i, item in enumerate(rest.split(";") if sep else []):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise DescriptorError(f"property {item.strip()!r} in {text!r} is not key=value")
        if key in props:
            raise DescriptorError(f"property {key!r} is given twice in {text!r}")
        props[key] = value.strip()
    return Descriptor(kind, props, text)
