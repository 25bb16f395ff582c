"""Timestamp properties shared by every format: ts / ts_ms (milliseconds) and ts_sec (seconds)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from .descriptor import Descriptor, DescriptorError, MessageError


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def ts_property(d: Descriptor, *, numeric: bool = True) -> tuple[str, Any, int]:
    """(key, field, multiplier) for the descriptor's timestamp: ts beats ts_ms beats ts_sec, as in the original.
    For txt the field is an int index (-1 = wall clock); for json/avro it is a field name or path."""
    for key, mult in (("ts", 1), ("ts_ms", 1), ("ts_sec", 1000)):
        raw = d.get(key)
        if raw is None:
            continue
        if not raw:
            raise DescriptorError(f"{key}= has no value in {d.text!r}")
        if numeric or raw.lstrip("-").isdigit():
            try:
                idx = int(raw)
            except ValueError:
                raise DescriptorError(f"{key}={raw!r} is not a field index in {d.text!r}") from None
            return key, (idx if idx > -1 else -1), mult
        return key, raw, mult
    raise DescriptorError(f"{d.text!r} needs a timestamp property: ts=N (ms), ts_ms=N or ts_sec=N (N=-1: wall clock)")


def to_ms(value: Any, mult: int) -> int:
    """Convert a field value to epoch milliseconds; raise MessageError when it is not a timestamp."""
    if isinstance(value, bool) or value is None:
        raise MessageError(f"timestamp {value!r} is not a number or date")
    if isinstance(value, int):
        return value * mult
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise MessageError(f"timestamp {value!r} is not finite")
        return int(value * mult)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, (bytes, bytearray)):
        try:
            return int(value) * mult
        except ValueError:
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise MessageError("timestamp field is not valid UTF-8") from None
    if isinstance(value, str):
        s = value.strip()
        try:
            return int(s) * mult
        except ValueError:
            pass
        try:
            f = float(s)
            if f == f and f not in (float("inf"), float("-inf")):
                return int(f * mult)
        except ValueError:
            pass
        try:
            d = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            raise MessageError(f"timestamp {s[:64]!r} is not a number or an ISO-8601 date") from None
        return to_ms(d, 1)
    raise MessageError(f"timestamp of type {type(value).__name__} is not a number or date")


def clock(now_ms: Callable[[], int] | None) -> Callable[[], int]:
    return now_ms or wall_clock_ms
