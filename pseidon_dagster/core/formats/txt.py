"""`txt`: separated text. Fields are split on one separator character; empty fields are kept (the original
collapsed runs of separators, which shifted column indexes)."""
from __future__ import annotations

from typing import Callable

from .descriptor import Descriptor, DescriptorError, MessageError
from .timestamps import clock, to_ms, ts_property

NAMED_SEPARATORS = {
    "byte1": b"\x01",
    "tab": b"\t",
    "space": b" ",
    "semicolon": b";",
    "pipe": b"|",
    "comma": b",",
}
KNOWN_PROPS = {"sep", "ts", "ts_ms", "ts_sec", "msg"}


def separator(raw: str | None) -> bytes:
    """A named separator (byte1, tab, space, semicolon, pipe, comma; any case), one literal character, or an
    escape (\\t, \\x01, \\u0001)."""
    if raw is None or raw == "":
        return b"\x01"
    named = NAMED_SEPARATORS.get(raw.lower())
    if named:
        return named
    text = raw
    if raw.startswith("\\") and len(raw) > 1:
        try:
            text = raw.encode("ascii").decode("unicode_escape")
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise DescriptorError(f"sep={raw!r} is not a valid escape") from None
    if len(text) != 1:
        raise DescriptorError(
            f"sep={raw!r} must be one of {', '.join(NAMED_SEPARATORS)}, a single character, or an escape like \\t")
    if text in "\n\r":
        raise DescriptorError("sep cannot be a line break: output is one line per message")
    return text.encode("utf-8")


def field_selector(raw: str | None) -> tuple[str, int, int]:
    """Parse msg=: ('all',0,0) | ('one', i, 0) | ('slice', start, end) with the original's slice semantics:
    empty/negative start = 0; empty end, -1 or below = to the end; end <= start = one field."""
    if raw is None or raw.strip() in ("", ":"):
        return "all", 0, 0
    s = raw.strip()
    if ":" not in s:
        try:
            i = int(s)
        except ValueError:
            raise DescriptorError(f"msg={raw!r} is not a field index or start:end") from None
        if i < 0:
            return "all", 0, 0
        return "one", i, 0
    a, _, b = s.partition(":")
    b = b.split(":")[0]  # a third part is ignored, as in the original
    try:
        start = int(a.strip()) if a.strip() else 0
        end = int(b.strip()) if b.strip() else -1
    except ValueError:
        raise DescriptorError(f"msg={raw!r}: start and end must be integers") from None
    start = max(start, 0)
    if start == 0 and end <= -1:
        return "all", 0, 0
    return "slice", start, end


def select(fields: list[bytes], kind: str, a: int, b: int) -> list[bytes]:
    n = len(fields)
    if kind == "all":
        return fields
    if kind == "one":
        if a >= n:
            raise MessageError(f"msg field {a} out of range: the message has {n} fields")
        return [fields[a]]
    end = n if b <= -1 else min(b, n)
    if a >= n:
        return []
    if end <= a:
        return [fields[a]]
    return fields[a:end]


class TxtParser:
    type = "txt"

    def __init__(self, d: Descriptor, now_ms: Callable[[], int] | None = None):
        unknown = set(d.props) - KNOWN_PROPS
        if unknown:
            raise DescriptorError(f"unknown txt properties {sorted(unknown)} in {d.text!r}")
        self.descriptor = d
        self.sep = separator(d.get("sep"))
        self.ts_key, self.ts_index, self.ts_mult = ts_property(d)
        self.kind, self.a, self.b = field_selector(d.get("msg"))
        self.now_ms = clock(now_ms)
        self.line = self._build_line()

    def _build_line(self):
        sep, idx, mult, now = self.sep, self.ts_index, self.ts_mult, self.now_ms
        kind, a, b = self.kind, self.a, self.b
        nl = b"\n"

        def ts_of(fields: list[bytes]) -> int:
            if idx < 0:
                return now()
            if idx >= len(fields):
                raise MessageError(f"{self.ts_key} field {idx} out of range: the message has {len(fields)} fields")
            f = fields[idx]
            try:
                return int(f) * mult
            except ValueError:
                return to_ms(f, mult)

        if kind == "all":
            # Output is the message itself; only the timestamp field needs splitting.
            def line(value: bytes) -> tuple[int, bytes]:
                if value[-1:] == nl:
                    value = value.rstrip(b"\r\n")
                if idx < 0:
                    return now(), value + nl
                parts = value.split(sep, idx + 1)
                if idx >= len(parts):
                    raise MessageError(f"{self.ts_key} field {idx} out of range: the message has {len(parts)} fields")
                f = parts[idx]
                try:
                    return int(f) * mult, value + nl
                except ValueError:
                    return to_ms(f, mult), value + nl
        else:
            def line(value: bytes) -> tuple[int, bytes]:
                if value[-1:] == nl:
                    value = value.rstrip(b"\r\n")
                fields = value.split(sep)
                return ts_of(fields), sep.join(select(fields, kind, a, b)) + nl

        self._ts_of = ts_of
        return line

    def row(self, value: bytes) -> tuple[int, list[str]]:
        """Selected fields as text, for writers that map fields to columns by position."""
        if value[-1:] == b"\n":
            value = value.rstrip(b"\r\n")
        fields = value.split(self.sep)
        ts = self._ts_of(fields)
        try:
            return ts, [f.decode("utf-8") for f in select(fields, self.kind, self.a, self.b)]
        except UnicodeDecodeError as e:
            raise MessageError(f"field is not valid UTF-8: {e.reason}") from None
