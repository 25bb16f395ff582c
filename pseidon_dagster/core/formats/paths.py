"""Field paths for structured formats (json, avro-txt): a top-level name, or a dotted path into nested objects."""
from __future__ import annotations

from typing import Any

from .descriptor import DescriptorError

MISSING: Any = object()


class FieldPath:
    """`name` or `a.b.c`. Lookup: a top-level key equal to the whole text wins (JSON keys may contain dots);
    otherwise each segment is a key of an object, or a decimal index into an array."""

    __slots__ = ("text", "parts", "simple")

    def __init__(self, text: str, what: str):
        text = text.strip()
        if not text:
            raise DescriptorError(f"{what}: empty field name")
        parts = tuple(text.split("."))
        if any(not p for p in parts):
            raise DescriptorError(f"{what}: {text!r} has an empty segment; write a name or a dotted path like a.b")
        self.text = text
        self.parts = parts
        self.simple = len(parts) == 1

    def get(self, obj: Any) -> Any:
        """The value at this path, or MISSING."""
        if type(obj) is not dict:
            return MISSING
        v = obj.get(self.text, MISSING)
        if v is not MISSING or self.simple:
            return v
        for p in self.parts:
            if type(obj) is dict:
                obj = obj.get(p, MISSING)
                if obj is MISSING:
                    return MISSING
            elif type(obj) is list and p.isascii() and p.isdigit():
                i = int(p)
                if i >= len(obj):
                    return MISSING
                obj = obj[i]
            else:
                return MISSING
        return obj

    def __repr__(self) -> str:
        return f"FieldPath({self.text!r})"
