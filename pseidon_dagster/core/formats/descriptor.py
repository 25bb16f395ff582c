"""The syntax of format descriptors, `<type>:<key>=<value>;...`, and the errors of all formats (docs/formats.md).

Compatible with the original's descriptors, but lenient where it was needlessly strict:
- whitespace around the type, keys and values is ignored; the type and the keys are case-insensitive;
- values may contain ':' and '=' (only ';' separates properties); empty `;;` items are skipped;
- a trailing ':' in a value is kept (`msg=1:` means "field 1 to the end", where the original silently read `msg=1`).

And strict where the original failed late or silently: unknown types and unknown keys, a repeated key, an item without
'=', a missing timestamp property and every invalid value are rejected by parse_descriptor (input_formats.py: the
syntax here, the properties by the type's spec), with a message naming the problem, so a bad `format` cell is caught
when `pseidon_logs` is read rather than once per message.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Collection


class DescriptorError(ValueError):
    """The descriptor text is invalid; the message says what and where."""


class MessageError(ValueError):
    """One message could not be parsed; str() is the reason recorded in quarantine.

    Reasons start with a stable category before the first ':' (`bad timestamp: ...`, `invalid JSON: ...`), which the
    ingest uses to count quarantined messages per reason."""


@dataclasses.dataclass(frozen=True)
class Descriptor:
    type: str
    props: dict[str, str]
    text: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.props.get(key, default)


def split_descriptor(text: str | bytes | None, known_types: Collection[str]) -> Descriptor:
    """Syntax only: a type among known_types and key=value pairs, without checking what the keys and values mean."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise DescriptorError("format descriptor is not valid UTF-8") from None
    if text is None or not str(text).strip():
        raise DescriptorError("empty format descriptor; give one such as txt:sep=tab;ts=0")
    text = str(text)
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in known_types:
        raise DescriptorError(f"unknown format type {kind!r} in {text!r}; expected one of {', '.join(known_types)}")
    props: dict[str, str] = {}
    for item in rest.split(";") if sep else []:
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise DescriptorError(f"property {item.strip()!r} in {text!r} is not key=value")
        if key in props:
            raise DescriptorError(f"property {key!r} is given twice in {text!r}")
        props[key] = value.strip()
    return Descriptor(kind, props, text)


def check_keys(d: Descriptor, known: tuple[str, ...]) -> None:
    """Raise DescriptorError naming the properties of D that its type does not take (KNOWN)."""
    unknown = [k for k in d.props if k not in known]
    if unknown:
        raise DescriptorError(
            f"unknown {d.type} propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} in "
            f"{d.text!r}; {d.type} takes {', '.join(known)}")
