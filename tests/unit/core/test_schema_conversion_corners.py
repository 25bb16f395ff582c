"""Parquet column conversion corners (core/schemas.py): Avro decimals, dates and bytes into other column types, and
the MessageError (naming the column, the value and the reason) for what does not fit."""
from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from pseidon_dagster.core.formats import MessageError
from pseidon_dagster.core.schemas import RowConverter

D = decimal.Decimal


def convert(t: pa.DataType, v):
    return RowConverter(pa.schema([pa.field("c", t)]))([v])[0]


@pytest.mark.parametrize("t,v,expected", [
    (pa.int32(), D("12"), 12),
    (pa.float64(), D("2.5"), 2.5),
    (pa.decimal128(10, 2), 7, D("7.00")),
    (pa.timestamp("ms"), D("1.5e12"), 1_500_000_000_000),
    (pa.string(), dt.date(2026, 11, 20), "2026-11-20"),
    (pa.string(), dt.datetime(2026, 11, 20, 7, 30), "2026-11-20T07:30:00"),
    (pa.string(), {"d": D("1.5"), "t": dt.time(7, 30)}, '{"d":"1.5","t":"07:30:00"}'),
    (pa.binary(), bytearray(b"ab"), b"ab"),
    (pa.binary(), memoryview(b"cd"), b"cd"),
    (pa.struct([("a", pa.int32())]), {1: 2, "A": 3}, {"a": 3}),  # a non-string key is no column name
])
def test_values_of_another_type_convert_to_the_column(t, v, expected):
    assert convert(t, v) == expected


@pytest.mark.parametrize("t,v,reason", [
    (pa.int32(), D("1.5"), "cannot convert Decimal('1.5') to int32 (not a whole number)"),
    (pa.int32(), D("NaN"), "cannot convert Decimal('NaN') to int32 (not a whole number)"),
    (pa.int64(), D("1e25"), "cannot convert Decimal('1E+25') to int64 (out of range for int64)"),
    pytest.param(pa.int32(), 10 ** 5000, "cannot convert <int too long to show> to int32 (out of range for int32)",
                 id="int-of-5001-digits"),
    (pa.float64(), True, "cannot convert True to double (a boolean is not a number)"),
    (pa.float64(), D("1e400"), "cannot convert Decimal('1E+400') to double (out of range for double)"),
    (pa.timestamp("ms"), D("1e30"),
     "cannot convert Decimal('1E+30') to timestamp[ms] (outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z)"),
])
def test_a_value_that_does_not_fit_is_a_message_error_naming_column_value_and_reason(t, v, reason):
    with pytest.raises(MessageError) as e:
        convert(t, v)
    assert str(e.value) == f"column c: {reason}"
