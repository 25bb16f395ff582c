"""Timestamp properties shared by every format: ts / ts_ms (milliseconds) and ts_sec (seconds).

Precedence is the original's: `ts` beats `ts_ms` beats `ts_sec`. A negative index (`ts=-1`) means "the clock"
(`now_ms`, which the ingest sets to the run's plan time so replays are deterministic).

Value conversion (`to_ms`), identical for every format:
- an integer (a Python int, or ASCII text that `int()` reads: digits with an optional sign, surrounding whitespace
  and `_` digit separators) is taken as is (`ts`, `ts_ms`) or multiplied by 1000 (`ts_sec`);
- a decimal number (`1494421200.5`, `1.4944212e9`) is converted exactly and floored to whole milliseconds;
- an ISO-8601 date or date-time (`2017-05-10T13:00:00Z`, `2017-05-10 13:00:00.250+02:00`, `2017-05-10`) gives its
  instant; without an offset it is read as UTC. The unit property (ms or seconds) does not matter for dates;
- a datetime/date object (Avro logical types) gives its instant (naive = UTC);
- anything else (empty, `abc`, `NaN`, `0x10`, booleans, null, numbers of 20 or more digits) raises MessageError
  naming the (truncated) value.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import time
from collections.abc import Callable
from typing import Any

from .descriptor import Descriptor, DescriptorError, MessageError

TS_KEYS = (("ts", 1), ("ts_ms", 1), ("ts_sec", 1000))
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)
_LIMIT = decimal.Decimal(10) ** 20  # far beyond any epoch in ns; keeps Decimal -> int conversion cheap
_CTX = decimal.Context(prec=60, traps=[decimal.InvalidOperation])


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def clock(now_ms: Callable[[], int] | None) -> Callable[[], int]:
    return now_ms or wall_clock_ms


def ts_property(d: Descriptor) -> tuple[str, str, int]:
    """(key, raw value, multiplier) of the descriptor's timestamp property, by precedence ts > ts_ms > ts_sec."""
    for key, mult in TS_KEYS:
        raw = d.get(key)
        if raw is None:
            continue
        if not raw:
            raise DescriptorError(f"{key}= has no value in {d.text!r}; give a field, or -1 for the clock")
        return key, raw, mult
    raise DescriptorError(
        f"{d.text!r} has no timestamp property: add ts=FIELD (milliseconds), ts_ms=FIELD or ts_sec=FIELD (seconds), "
        f"or ts=-1 to use the run's clock")


def as_int(raw: str) -> int | None:
    """The integer a property value spells (ASCII digits, optional sign), or None."""
    s = raw.strip()
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    try:
        return int(s)
    except ValueError:  # more digits than Python converts (4300)
        return None


def field_index(key: str, raw: str, d: Descriptor) -> int:
    """A txt field index; any negative value is -1 (the clock)."""
    i = as_int(raw)
    if i is None:
        raise DescriptorError(f"{key}={raw!r} in {d.text!r} is not a field index (0, 1, ... or -1 for the clock)")
    return i if i > -1 else -1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 66 else text[:60] + "...(" + str(len(text)) + " chars)"


def bad_ts(value: Any, why: str = "is not an integer, a decimal number or an ISO-8601 date") -> MessageError:
    return MessageError(f"bad timestamp: {_short(value)} {why}")


def _decimal_ms(d: decimal.Decimal, mult: int, original: Any) -> int:
    if not d.is_finite():
        raise bad_ts(original, "is not finite")
    if abs(d) >= _LIMIT:
        raise bad_ts(original, "is out of range")
    return math.floor(_CTX.multiply(d, mult))


def _datetime_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    try:
        return (value - EPOCH) // _MS
    except OverflowError:  # pragma: no cover - aware datetimes within year 1..9999 never overflow
        raise bad_ts(value, "is out of range") from None


def _text_ms(s: str, mult: int, original: Any) -> int:
    s = s.strip()
    if s.isascii():
        try:
            return int(s) * mult
        except ValueError:
            pass
        if s and (s[0] in "+-." or s[0].isdigit()):
            try:
                return _decimal_ms(_CTX.create_decimal(s), mult, original)
            except decimal.InvalidOperation:
                pass
        if len(s) >= 8 and s[:4].isdigit():
            iso = s[:-1] + "+00:00" if s[-1:] in "Zz" else s
            try:
                value = dt.datetime.fromisoformat(iso)
            except ValueError:
                pass
            else:
                return _datetime_ms(value)
    raise bad_ts(original)


def to_ms(value: Any, mult: int) -> int:
    """Convert a field value to epoch milliseconds; raise MessageError when it is not a timestamp."""
    if value is None:
        raise MessageError("bad timestamp: the value is null")
    if isinstance(value, bool):
        raise bad_ts(value, "is not a timestamp")
    if isinstance(value, int):
        return value * mult
    if isinstance(value, float):
        if not math.isfinite(value):
            raise bad_ts(value, "is not finite")
        # repr() is the shortest text that reads back as this float: 1494421200.123 stays .123, not .12299...
        return _decimal_ms(decimal.Decimal(repr(value)), mult, value)
    if isinstance(value, decimal.Decimal):
        return _decimal_ms(value, mult, value)
    if isinstance(value, dt.datetime):
        return _datetime_ms(value)
    if isinstance(value, dt.date):
        return _datetime_ms(dt.datetime(value.year, value.month, value.day))
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        try:
            return int(b) * mult
        except ValueError:
            pass
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_ts(b, "is not valid UTF-8") from None
        return _text_ms(text, mult, b)
    if isinstance(value, str):
        return _text_ms(value, mult, value)
    raise bad_ts(value, f"(a {type(value).__name__}) is not a timestamp")
