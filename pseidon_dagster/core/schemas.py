"""Typed rows for Parquet: per-column converters that name the column when a value does not fit. The Arrow schema
comes from the Hive table (hive.hive_schema_for) or from <schema-dir>/<log>.json (hive.load_schema_file); the Hive
type -> Arrow type mapping is hive/types.py.

Long because the per-value converters and their column-wise Arrow twins must give exactly the same values and
reasons (tests/unit/core/hive/test_schemas_property.py holds them to it), so each type's two paths are kept in one
place.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import reprlib
import struct
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .formats import MessageError
from .hive.types import SchemaError

# -- converters ----------------------------------------------------------------------------------------------------
# A converter turns one parser value (txt: str; json: str/int/float/bool/list/dict; avro: also bytes, Decimal,
# datetime, date) into the Python value Arrow stores for its column, or raises ValueError/TypeError/ArithmeticError
# saying why it does not fit. Guarantee: pa.array([converter(t)(v)], type=t) always succeeds and reads back as the
# converted value, so a batch of converted rows always builds (tests/unit/core/hive/test_schemas_property.py checks
# this against pyarrow with generated types and values).
#
# Rules, per column type (nested types apply them to every element, key and field):
# - null is null; "" is null for every type but string (Hive reads an empty text field the same way).
# - string: valid UTF-8 only (a lone surrogate is not); bytes are decoded as UTF-8; booleans as true/false; lists and
#   dicts as compact JSON (\u escapes where a string holds a lone surrogate); dates/times ISO-8601; numbers as text.
# - tinyint..bigint: whole numbers in range (a whole float or Decimal too); text of ASCII digits; never a boolean.
# - float/double: numbers and number text, nan and inf included, but not a finite number that overflows (1e400);
#   float is rounded to 32 bits as Arrow stores it.
# - decimal(p,s): finite numbers and number text, rounded half-up to s places, at most p digits.
# - boolean: a boolean, 0/1, or true/false/t/f/yes/no/1/0 in any case.
# - timestamp (ms, UTC): epoch ms (a number, or digit text), ISO-8601 text (an offset converts to UTC, none = UTC),
#   a datetime or a date (midnight UTC); floored to whole ms; between 0001-01-01 and 9999-12-31T23:59:59.999 (what
#   Hive and Python read back).
# - date: a date, a datetime or ISO text (its calendar date as written), or days since 1970-01-01 (an int).
# - binary: bytes as they are; anything else as its string form in UTF-8.
# - array: a list; map: a dict without null keys; struct: a dict whose keys match the field names in any case
#   (missing fields are null, others are ignored).

_CAUGHT = (ValueError, TypeError, ArithmeticError, RecursionError)
_TRUE, _FALSE = {"true", "1", "t", "yes"}, {"false", "0", "f", "no"}
_UTC = dt.timezone.utc
_EPOCH, _EPOCH_NAIVE, _EPOCH_DATE = dt.datetime(1970, 1, 1, tzinfo=_UTC), dt.datetime(1970, 1, 1), dt.date(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)
TS_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
TS_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_DAYS_MIN, _DAYS_MAX = -719_162, 2_932_896  # 0001-01-01, 9999-12-31
_F32 = struct.Struct("<f")
_DEC_CTX = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP)  # > 38 digits: quantize never fails on size
_SHOW = reprlib.Repr()  # values in reasons: bounded, lone surrogates escaped (a reason must be valid UTF-8)
_SHOW.maxstring = _SHOW.maxother = 60


def _json_default(v):
    """Avro values inside a dict or list for a string column, as avro.text_of renders them."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return str(v)  # Decimal, UUID


_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default).encode
_json_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=_json_default).encode


class _Unfit(ValueError):
    """A nested value that does not fit, with where it sits (`[2].name`)."""

    def __init__(self, where: str, reason: str):
        super().__init__(where, reason)
        self.where, self.reason = where, reason

    def __str__(self) -> str:
        return f"at {self.where}: {self.reason}"


def _nested(where: str, e: Exception) -> _Unfit:
    return _Unfit(where + e.where, e.reason) if isinstance(e, _Unfit) else _Unfit(where, str(e))


def _kind(v) -> str:
    return "null" if v is None else type(v).__name__


def _utf8(s: str) -> str:
    """s itself if it encodes as UTF-8 (Arrow strings must); a lone surrogate does not."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"lone surrogate U+{ord(s[e.start]):04X} at {e.start}: not valid UTF-8") from None
    return s


def _plain_number(s: str) -> str:
    """Python's int/float/Decimal also read '1_000' and non-ASCII digits; Hive does not: neither do we."""
    s = s.strip()
    if not s.isascii() or "_" in s:
        raise ValueError("not a plain number")
    return s


def _to_int(bits: int) -> Callable[[Any], int | None]:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)

    def conv(v):
        t = type(v)
        if t is int:
            n = v
        elif t is str:
            if not v:
                return None
            n = int(_plain_number(v))
        elif v is None:
            return None
        elif t is bool:
            raise TypeError("a boolean is not an integer")
        elif t is float:
            if not v.is_integer():
                raise ValueError("not a whole number")
            n = int(v)
        elif isinstance(v, decimal.Decimal):
            if not v.is_finite() or v != v.to_integral_value():
                raise ValueError("not a whole number")
            if v.adjusted() >= 20:  # int() of 1e999999999 would take forever
                raise ValueError(f"out of range for int{bits}")
            n = int(v)
        elif isinstance(v, int):
            n = int(v)
        else:
            raise TypeError(f"expected an integer, got {_kind(v)}")
        if not lo <= n < hi:
            raise ValueError(f"out of range for int{bits}")
        return n

    return conv


def _to_float(bits: int) -> Callable[[Any], float | None]:
    def conv(v):
        t = type(v)
        if t is float:
            f = v
        elif t is int:
            f = float(v)
        elif t is str:
            if not v:
                return None
            s = _plain_number(v)
            f = float(s)
            if math.isinf(f) and "inf" not in s.lower():
                raise ValueError("out of range for double")  # 1e400 reads as infinity
        elif v is None:
            return None
        elif t is bool:
            raise TypeError("a boolean is not a number")
        elif isinstance(v, (int, float, decimal.Decimal)):
            f = float(v)
            if math.isinf(f) and isinstance(v, decimal.Decimal) and v.is_finite():
                raise ValueError("out of range for double")
        else:
            raise TypeError(f"expected a number, got {_kind(v)}")
        if bits == 32:
            try:
                return _F32.unpack(_F32.pack(f))[0]  # what Arrow stores; the struct module refuses what overflows
            except OverflowError:
                raise ValueError("out of range for float") from None
        return f

    return conv


def _to_decimal(t: pa.Decimal128Type) -> Callable[[Any], decimal.Decimal | None]:
    p, s = t.precision, t.scale
    unit = decimal.Decimal(1).scaleb(-s)

    def conv(v):
        ty = type(v)
        if ty is str:
            if not v:
                return None
            try:
                d = decimal.Decimal(_plain_number(v))
            except decimal.InvalidOperation:
                raise ValueError("not a number") from None
        elif ty is int or isinstance(v, decimal.Decimal):
            d = decimal.Decimal(v)
        elif ty is float:
            d = decimal.Decimal(repr(v))  # the shortest text that reads back as v: 0.1, not 0.1000000000000000055
        elif v is None:
            return None
        elif ty is bool:
            raise TypeError("a boolean is not a number")
        elif isinstance(v, int):
            d = decimal.Decimal(int(v))
        else:
            raise TypeError(f"expected a number, got {_kind(v)}")
        if not d.is_finite():
            raise ValueError("not a finite number")
        if d and d.adjusted() >= p - s:  # checked before quantize, which would expand 1e999999999
            raise ValueError(f"more than {p - s} digits before the point")
        d = d.quantize(unit, context=_DEC_CTX)
        if d and d.adjusted() >= p - s:  # rounding up: 9.995 -> 10.00 in decimal(3,2)
            raise ValueError(f"more than {p - s} digits before the point")
        return d

    return conv


def _to_bool(v):
    if v is True or v is False or v is None:
        return v
    if type(v) is str:
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        if not v:
            return None
        raise ValueError("not a boolean")
    if type(v) is int and v in (0, 1):
        return v == 1
    raise TypeError(f"expected a boolean, got {_kind(v)}")


def _dt_ms(d: dt.datetime) -> int:
    """Exact epoch ms of a datetime (naive = UTC), floored; float seconds would round 1.001 s to 1000 ms."""
    return (d - (_EPOCH if d.tzinfo is not None else _EPOCH_NAIVE)) // _MS


def _to_ts(v):
    t = type(v)
    if t is int:
        n = v
    elif t is str:
        if not v:
            return None
        s = v.strip()
        if s.isascii() and s.lstrip("-+").isdigit():
            n = int(s)  # epoch ms as text (txt logs)
        else:
            n = _dt_ms(dt.datetime.fromisoformat(s))
    elif v is None:
        return None
    elif t is bool:
        raise TypeError("a boolean is not a timestamp")
    elif isinstance(v, dt.datetime):
        n = _dt_ms(v)
    elif isinstance(v, dt.date):
        n = (v - _EPOCH_DATE).days * 86_400_000
    elif t is float or isinstance(v, (int, decimal.Decimal)):
        if isinstance(v, decimal.Decimal) and v.is_finite() and v.adjusted() > 20:
            raise ValueError("outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z")  # before floor(1e999999999)
        n = math.floor(v)
    else:
        raise TypeError(f"expected a timestamp, got {_kind(v)}")
    if not TS_MIN_MS <= n <= TS_MAX_MS:
        raise ValueError("outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z")
    return n


def _to_date(v):
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date) or v is None:
        return v
    t = type(v)
    if t is str:
        s = v.strip()
        if not v:
            return None
        try:
            return dt.date.fromisoformat(s)
        except ValueError:
            return dt.datetime.fromisoformat(s).date()  # a timestamp's calendar date, as written
    if t is int:
        return _EPOCH_DATE + dt.timedelta(days=v)  # OverflowError outside years 1..9999
    raise TypeError(f"expected a date, got {_kind(v)}")


def _to_str(v):
    if type(v) is str:
        return v if v.isascii() else _utf8(v)
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8")  # strict: invalid UTF-8 (and encoded surrogates) raise
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        s = _json(v)
        if not s.isascii():
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                s = _json_ascii(v)  # \ud800 escapes: still the same JSON, and valid UTF-8
        return s
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    s = str(v)
    return s if s.isascii() else _utf8(s)


def _to_bytes(v):
    if type(v) is bytes or v is None:
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if v == "":
        return None
    return _to_str(v).encode("utf-8")


def _to_list(t: pa.ListType):
    item = converter(t.value_type)

    def conv(v):
        if type(v) is not list and not isinstance(v, (list, tuple)):
            if v is None:
                return None
            raise TypeError(f"expected an array, got {_kind(v)}")
        try:
            return [item(x) for x in v]
        except _CAUGHT:
            pass
        for i, x in enumerate(v):  # find and name the element
            try:
                item(x)
            except _CAUGHT as e:
                raise _nested(f"[{i}]", e) from None
        raise AssertionError("converters are deterministic")  # pragma: no cover

    return conv


def _to_map(t: pa.MapType):
    key, item, text_keys = converter(t.key_type), converter(t.item_type), pa.types.is_string(t.key_type)

    def conv(v):
        if not isinstance(v, dict):
            if v is None:
                return None
            raise TypeError(f"expected a map (an object), got {_kind(v)}")
        if None in v or (not text_keys and "" in v):  # the keys a key converter turns into null
            raise _Unfit(f"[{'None' if None in v else repr('')}]", "a map key cannot be null")
        try:
            return [(key(k), item(x)) for k, x in v.items()]  # pairs: keys that convert alike ("1", 1) both stay
        except _CAUGHT:
            pass
        for k, x in v.items():  # find and name the entry
            try:
                key(k), item(x)
            except _CAUGHT as e:
                raise _nested(f"[{_SHOW.repr(k)}]", e) from None
        raise AssertionError("converters are deterministic")  # pragma: no cover

    return conv


def _to_struct(t: pa.StructType):
    fields = [(f.name, f.name.lower(), converter(f.type)) for f in t]

    def conv(v):
        if not isinstance(v, dict):
            if v is None:
                return None
            raise TypeError(f"expected a struct (an object), got {_kind(v)}")
        try:
            low = v if all(map(str.islower, v)) else None  # JSON keys mostly are
        except TypeError:  # a key that is not a str
            low = None
        if low is None:
            low = {str(k).lower(): x for k, x in v.items()}
        try:
            return {name: c(low.get(key)) for name, key, c in fields}
        except _CAUGHT:
            pass
        for name, key, c in fields:  # find and name the field
            try:
                c(low.get(key))
            except _CAUGHT as e:
                raise _nested(f".{name}", e) from None
        raise AssertionError("converters are deterministic")  # pragma: no cover

    return conv


def converter(t: pa.DataType) -> Callable[[Any], Any]:
    """The converter of one column type (see the rules above); None converts to None."""
    if pa.types.is_string(t):
        return _to_str
    if pa.types.is_signed_integer(t):
        return _to_int(t.bit_width)
    if pa.types.is_floating(t) and t.bit_width in (32, 64):
        return _to_float(t.bit_width)
    if pa.types.is_boolean(t):
        return _to_bool
    if pa.types.is_timestamp(t) and t.unit == "ms" and t.tz is None:
        return _to_ts
    if pa.types.is_date32(t):
        return _to_date
    if pa.types.is_binary(t):
        return _to_bytes
    if pa.types.is_decimal128(t):
        return _to_decimal(t)
    if pa.types.is_list(t):
        return _to_list(t)
    if pa.types.is_map(t):
        return _to_map(t)
    if pa.types.is_struct(t):
        return _to_struct(t)
    raise SchemaError(f"no Parquet converter for Arrow type {t}")


def _reason(v, t: pa.DataType, e: Exception) -> str:
    try:
        shown = _SHOW.repr(v)[:80]
    except ValueError:  # an int of more than 4300 digits
        shown = f"<{type(v).__name__} too long to show>"
    return f"cannot convert {shown} to {t} ({e})"


# -- column-wise ---------------------------------------------------------------------------------------------------
# convert_column builds a whole column with Arrow when Arrow's own conversion gives exactly what the converters give
# (pa.array's type inference, then a safe cast from the inferred type, then the range checks the converters apply),
# and goes value by value only for a chunk where it does not. Equivalence is property-tested.

COLUMN_CHUNK = 4096
_TEXT_FORMS = {  # text a typed column parses in Arrow only in these plain forms (Arrow also reads e.g. 0x10)
    "int": r"^-?[0-9]+$",
    "num": r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$",
    "bool": r"^(?i:true|false|1|0)$",
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
}


def convert_column(values, t: pa.DataType) -> tuple[pa.ChunkedArray, dict[int, str]]:
    """One column of parser values -> (a column of type t with len(values) rows, {index: reason} of the values that
    do not fit; they are null in the column). The same values and reasons as converter(t) value by value."""
    chunks, bad, conv = [], {}, None
    for lo in range(0, len(values), COLUMN_CHUNK):
        part = values[lo:lo + COLUMN_CHUNK]
        arr = _arrow_chunk(part, t)
        if arr is None:
            conv = conv or converter(t)
            out = []
            for i, v in enumerate(part, lo):
                try:
                    out.append(conv(v))
                except _CAUGHT as e:
                    out.append(None)
                    bad[i] = _reason(v, t, e)
            arr = pa.array(out, type=t)
        chunks.append(arr)
    return pa.chunked_array(chunks, type=t), bad


def cast_text_column(arr: pa.Array, t: pa.DataType, keep=None) -> pa.Array | None:
    """A column of text fields (Arrow strings, as the txt parser's rows hold them) as type t -- exactly the values the
    converters give -- or None when Arrow's conversion might differ (the caller then converts row by row). KEEP (a
    bool array): only those rows matter; the others become null."""
    try:
        if keep is not None and not keep.all():
            arr = pc.if_else(pa.array(keep), arr, pa.scalar(None, arr.type))
        out = _cast(arr, t)
        if out is not None:
            out.validate(full=True)
        return out
    except (pa.ArrowException, ValueError, TypeError, ArithmeticError):
        return None


def _bool_in_number(values, t: pa.DataType) -> bool:
    """Is a boolean where T wants a number, inside lists or structs? Arrow's nested inference turns it into 0/1
    ([[False], [0.0]] infers as list<double>) where the converter refuses it."""
    if pa.types.is_list(t):
        return any(type(v) is list and _bool_in_number(v, t.value_type) for v in values)
    if pa.types.is_struct(t):
        return any(type(v) is dict and any(_bool_in_number([x], t.field(i).type)
                                           for i, x in enumerate(v.get(f.name) for f in t)) for v in values)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_timestamp(t):
        return any(type(v) is bool for v in values)
    return False


def _arrow_chunk(values, t: pa.DataType) -> pa.Array | None:
    if (pa.types.is_list(t) or pa.types.is_struct(t)) and _bool_in_number(values, t):
        return None  # value by value: the converter says which and why
    try:
        if pa.types.is_map(t):
            arr = _map_chunk(values, t)
        else:  # inference refuses mixed types, surrogates, huge ints
            arr = _cast(pa.array(values, from_pandas=False), t)
        if arr is not None:
            arr.validate(full=True)  # nested inference lets bytes into a string list unchecked: [["", b"\x80"]]
        return arr
    except (pa.ArrowException, ValueError, TypeError, ArithmeticError):
        return None


def _map_chunk(values, t: pa.MapType) -> pa.Array | None:
    """Dicts as a map column: their keys and their items go through Arrow as columns of their own (a dict would
    infer as a struct)."""
    keys: list = []
    items: list = []
    offsets, nulls = [0], []
    for v in values:
        if type(v) is dict:
            keys.extend(v)
            items.extend(v.values())
        elif v is not None:
            return None
        nulls.append(v is None)
        offsets.append(len(keys))
    k = _arrow_chunk(keys, t.key_type)
    if k is None or k.null_count:  # a null key: the converter names it
        return None
    i = _arrow_chunk(items, t.item_type)
    if i is None:
        return None
    return pa.MapArray.from_arrays(offsets, k, i, type=t, mask=pa.array(nulls, pa.bool_()))


def _matches(arr: pa.Array, form: str) -> bool:
    return pc.all(pc.match_substring_regex(arr, _TEXT_FORMS[form])).as_py() is not False  # all null: None


def _in_range(ints: pa.Array, lo: int, hi: int) -> bool:
    mm = pc.min_max(ints).as_py()
    return mm["min"] is None or (lo <= mm["min"] and mm["max"] <= hi)


def _cast(arr: pa.Array, t: pa.DataType) -> pa.Array | None:
    """arr (as pa.array inferred it) as type t, when that is what the converters give; None when unsure."""
    s = arr.type
    if pa.types.is_null(s):
        return pa.nulls(len(arr), t)
    if pa.types.is_string(t):
        return arr if pa.types.is_string(s) else arr.cast(t) if pa.types.is_binary(s) else None
    if pa.types.is_string(s):  # text for a typed column: "" is null, and only plain forms
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, s), arr)
        if pa.types.is_binary(t):
            return arr.cast(t)
        if pa.types.is_integer(t) or pa.types.is_timestamp(t):
            arr = arr.cast(pa.int64()) if _matches(arr, "int") else None
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            if not _matches(arr, "num"):
                return None
            arr = _decimal_cast(arr, t) if pa.types.is_decimal(t) else arr.cast(pa.float64())
            if pa.types.is_floating(t) and pc.any(pc.is_inf(arr)).as_py():
                return None  # the forms hold no "inf": an overflow, which the converter refuses
        elif pa.types.is_boolean(t):
            arr = arr.cast(t) if _matches(arr, "bool") else None
        elif pa.types.is_date32(t):
            arr = arr.cast(t) if _matches(arr, "date") else None
        else:
            return None
        if arr is None:
            return None
        s = arr.type
    if pa.types.is_binary(t):
        if not pa.types.is_binary(s) or pc.any(pc.equal(pc.binary_length(arr), 0)).as_py():
            return None  # bytes and str infer as binary together: b"" stays, "" is null
        return arr
    if pa.types.is_integer(t):
        ok = pa.types.is_integer(s) or pa.types.is_floating(s) or pa.types.is_decimal(s)
        return arr.cast(t) if ok else None  # a safe cast refuses overflow, fractions and NaN
    if pa.types.is_floating(t):
        if not (pa.types.is_integer(s) or pa.types.is_floating(s)):
            return None
        out = arr.cast(pa.float64())  # int -> double -> float, rounding as the converter does
        if t.bit_width == 32:
            wide, out = out, out.cast(t)
            if pc.sum(pc.is_inf(out)).as_py() != pc.sum(pc.is_inf(wide)).as_py():
                return None  # out of float range
        return out
    if pa.types.is_boolean(t):
        return arr if pa.types.is_boolean(s) else None
    if pa.types.is_decimal(t):
        return _decimal_cast(arr, t) if pa.types.is_decimal(s) or pa.types.is_integer(s) else None
    if pa.types.is_timestamp(t):
        # not from datetimes: inference reads an int among them as microseconds, the converter as ms
        if not pa.types.is_integer(s):
            return None
        ints = arr.cast(pa.int64())
        return ints.cast(t) if _in_range(ints, TS_MIN_MS, TS_MAX_MS) else None
    if pa.types.is_date32(t):
        if not (pa.types.is_integer(s) or pa.types.is_date32(s)):  # an int among dates is days, as here
            return None
        days = arr.cast(pa.int32())
        return days.cast(t) if _in_range(days, _DAYS_MIN, _DAYS_MAX) else None
    if pa.types.is_list(t):
        if not pa.types.is_list(s):
            return None
        child = _cast(arr.values, t.value_type)
        return None if child is None else pa.ListArray.from_arrays(arr.offsets, child, type=t, mask=arr.is_null())
    if pa.types.is_struct(t):
        return _cast_struct(arr, t) if pa.types.is_struct(s) else None
    return None  # a map inside a list or struct: value by value


def _decimal_cast(arr: pa.Array, t: pa.Decimal128Type) -> pa.Array:
    """arr as decimal type t through a 256-bit decimal of t's scale, whose cast down checks t's precision: Arrow's
    direct cast rescales in 128 bits and wraps a value past them instead of refusing it ('125905' as
    decimal(35, 35) gave 0.5242...). Raises (the caller then converts value by value) when a value does not fit."""
    return arr.cast(pa.decimal256(76, t.scale)).cast(t)


def _cast_struct(arr: pa.StructArray, t: pa.StructType) -> pa.Array | None:
    have = {f.name for f in arr.type}
    wanted = {f.name for f in t}
    # the converter matches keys in any case; Arrow matches exactly: only equal when no key differs in case
    if any(n != n.lower() for n in wanted) or any(n != n.lower() and n.lower() in wanted for n in have):
        return None
    children = []
    for f in t:
        c = _cast(arr.field(f.name), f.type) if f.name in have else pa.nulls(len(arr), f.type)
        if c is None:
            return None
        children.append(c)
    return pa.StructArray.from_arrays(children, fields=list(t), mask=arr.is_null())


_ABSENT = object()


class RowConverter:
    """Turns a parser row (list by position, or dict by name) into a tuple of column values (`__call__`, raising
    MessageError naming the first column that does not fit), or many rows into a table column by column (`table`)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.names = [f.name for f in schema]
        self.types = [f.type for f in schema]
        self.convs = [converter(f.type) for f in schema]
        self._plans: dict[tuple, list] = {}

    def _plan(self, keys: tuple) -> list:
        """Which key of a dict row fills each column: names match in any case (the last such key wins), and
        `user.name` (json msg=user.name) fills column user_name unless a key user_name is there."""
        lowered = {}
        for k in keys:
            key = str(k).lower()
            lowered[key] = k
            lowered.setdefault(key.replace(".", "_"), k)
        if len(self._plans) >= 1024:  # rows with ever new keys must not grow the cache without bound
            self._plans.clear()
        plan = self._plans[keys] = [lowered.get(n, _ABSENT) for n in self.names]
        return plan

    def values(self, row) -> list:
        """The row's raw value per column (None when absent)."""
        if isinstance(row, dict):
            keys = tuple(row)
            plan = self._plans.get(keys) or self._plan(keys)
            return list(map(row.get, plan))  # _ABSENT is no key: None
        n = len(self.names)
        if len(row) > n:
            raise MessageError(f"{len(row)} fields but the schema has {n} columns")
        return row if len(row) == n else list(row) + [None] * (n - len(row))

    def __call__(self, row) -> tuple:
        values = self.values(row)
        try:
            return tuple([conv(v) for conv, v in zip(self.convs, values)])
        except _CAUGHT:
            pass
        for name, t, conv, v in zip(self.names, self.types, self.convs, values):  # find and name the column
            try:
                conv(v)
            except _CAUGHT as e:
                raise MessageError(f"column {name}: {_reason(v, t, e)}") from None
        raise AssertionError("converters are deterministic")  # pragma: no cover

    def table(self, rows: list) -> tuple[pa.Table, dict[int, str]]:
        """Many rows at once: (a table of the rows that fit, in order; {row index: reason} of the others). The same
        values and reasons as calling the converter on each row, built column by column (convert_column)."""
        n, bad, raw = len(self.names), {}, []
        for i, row in enumerate(rows):
            try:
                raw.append(self.values(row))
            except MessageError as e:
                bad[i] = str(e)
                raw.append([None] * n)
        columns = list(zip(*raw)) if raw else [()] * n
        arrays = []
        for name, t, values in zip(self.names, self.types, columns):
            arr, col_bad = convert_column(values, t)
            for i, reason in col_bad.items():
                bad.setdefault(i, f"column {name}: {reason}")  # the first column that does not fit, as row by row
            arrays.append(arr)
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if bad:
            table = table.filter(pa.array([i not in bad for i in range(len(rows))]))
        return table, bad
