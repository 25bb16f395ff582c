"""Parquet converters against pyarrow's own array building (issue 8): a value the converter accepts always builds into
its column and reads back as what the converter returned; anything else is a MessageError naming the column, never
another exception. Pure tests: no servers.

Normalisation for comparing a converted value with what Arrow reads back (`norm`): timestamps as epoch ms (naive =
UTC), NaN as a marker, maps as lists of (key, value) pairs; everything else compares with ==.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseidon_dagster.core.formats import MessageError
from pseidon_dagster.core.hive import hive_type, schema_from_columns
from pseidon_dagster.core.schemas import RowConverter

D = decimal.Decimal
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# PSEIDON_PROPERTY_EXAMPLES=5000 for a longer search than CI's
PROPERTY = settings(max_examples=int(os.environ.get("PSEIDON_PROPERTY_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def ms(d: dt.datetime) -> int:
    return ((d if d.tzinfo else d.replace(tzinfo=UTC)) - EPOCH) // dt.timedelta(milliseconds=1)


def norm(t: pa.DataType, v):
    if v is None:
        return None
    if pa.types.is_timestamp(t):
        return ms(v) if isinstance(v, dt.datetime) else v
    if pa.types.is_floating(t):
        return "NaN" if math.isnan(v) else v
    if pa.types.is_list(t):
        return [norm(t.value_type, x) for x in v]
    if pa.types.is_map(t):
        pairs = v.items() if isinstance(v, dict) else v
        return [(norm(t.key_type, k), norm(t.item_type, x)) for k, x in pairs]
    if pa.types.is_struct(t):
        return {f.name: norm(f.type, v.get(f.name)) for f in t}
    return v


def convert_one(t: pa.DataType, v):
    """(True, converted) or (False, MessageError text), through a one-column RowConverter."""
    conv = RowConverter(pa.schema([pa.field("c", t)]))
    try:
        return True, conv([v])[0]
    except MessageError as e:
        return False, str(e)


def assert_builds(t: pa.DataType, converted: list) -> None:
    arr = pa.array(converted, type=t)
    assert [norm(t, x) for x in arr.to_pylist()] == [norm(t, x) for x in converted]


# -- examples: each adversarial value of the issue, and values that must convert exactly --------------------------

BAD = [
    ("string", "a\ud800b"), ("string", b"\xff\xfe"), ("string", b"\xed\xa0\x80"),
    ("array<string>", ["ok", "\udfff"]), ("map<string,string>", {"k": "\ud800"}),
    ("map<string,string>", {"\ud800": "v"}),
    ("struct<a:string>", {"a": "\udc00"}), ("binary", "\ud800"),
    ("decimal(10,2)", float("nan")), ("decimal(10,2)", float("inf")), ("decimal(10,2)", -float("inf")),
    ("decimal(10,2)", "NaN"), ("decimal(10,2)", "-Infinity"), ("decimal(10,2)", D("NaN")), ("decimal(10,2)", D("sNaN")),
    ("decimal(10,2)", D("Infinity")), ("decimal(10,2)", "123456789.5"), ("decimal(10,2)", "1e400"),
    ("decimal(10,2)", "lots"), ("decimal(10,2)", True), ("decimal(3,2)", "9.999"),
    ("int", float("nan")), ("int", float("inf")), ("int", 2 ** 31), ("int", -2 ** 31 - 1), ("int", True),
    ("int", 1.5), ("int", "1_000"), ("int", "0x10"), ("int", "\u0661\u0662"), ("bigint", 2 ** 63), ("bigint", 1e19),
    ("tinyint", 128), ("boolean", 2), ("boolean", "maybe"), ("float", 1e300), ("float", "1e39"),
    ("timestamp", 2 ** 62), ("timestamp", MAX_MS + 1), ("timestamp", MIN_MS - 1), ("timestamp", float("nan")),
    ("timestamp", float("inf")), ("timestamp", True), ("timestamp", "9999-12-31T23:30:00-05:00"),
    ("timestamp", "0001-01-01T00:30:00+01:00"), ("timestamp", "yesterday"), ("timestamp", [1]),
    ("date", 10 ** 9), ("date", "2020-13-01"), ("date", "2020-01-01garbage"), ("date", True),
    ("array<int>", [1, "x"]), ("array<int>", [1, True]), ("array<string>", "abc"), ("array<int>", {"a": 1}),
    ("array<array<int>>", [[1], [2 ** 40]]),
    ("map<string,int>", {"a": "x"}), ("map<string,int>", {None: 1}), ("map<int,string>", {"x": "y"}),
    ("map<int,string>", {"": "y"}), ("map<string,int>", [("a", 1)]), ("map<string,int>", "a=1"),
    ("struct<a:int>", "x"), ("struct<a:int>", [1]), ("struct<a:int>", {"a": "z"}),
    ("struct<a:struct<b:timestamp>>", {"a": {"b": 2 ** 62}}),
]


@pytest.mark.parametrize("hive,value", BAD, ids=[f"{h}-{v!r}"[:60] for h, v in BAD])
def test_a_value_that_does_not_fit_is_a_message_error_naming_the_column(hive, value):
    conv = RowConverter(schema_from_columns([("ok", "string"), ("Col_X", hive)]))
    with pytest.raises(MessageError, match="column col_x"):
        conv(["fine", value])
    with pytest.raises(MessageError, match="column col_x"):
        conv({"ok": "fine", "col_x": value})


GOOD = [
    ("timestamp", "2026-11-20T07:00:00+02:00", 1_795_150_800_000),
    ("timestamp", "2026-11-20T05:00:00.0015Z", 1_795_150_800_001),
    ("timestamp", "2026-11-20 05:00:00", 1_795_150_800_000),
    ("timestamp", dt.datetime(2026, 11, 20, 5, 0, 0, 1999), 1_795_150_800_001),
    ("timestamp", dt.datetime(2026, 11, 20, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))), 1_795_150_800_000),
    ("timestamp", dt.date(2026, 11, 20), 1_795_132_800_000),
    ("timestamp", "1795150800000", 1_795_150_800_000), ("timestamp", 1_795_150_800_000.9, 1_795_150_800_000),
    ("timestamp", MIN_MS, MIN_MS), ("timestamp", "9999-12-31T23:59:59.999Z", MAX_MS),
    ("date", "2026-11-20", dt.date(2026, 11, 20)), ("date", dt.datetime(2026, 11, 20, 23), dt.date(2026, 11, 20)),
    ("date", 1, dt.date(1970, 1, 2)),
    ("decimal(38,10)", "1234567890123456789012345678.1234567890", D("1234567890123456789012345678.1234567890")),
    ("decimal(10,2)", 0.1, D("0.10")), ("decimal(10,2)", "1.005", D("1.01")), ("decimal(10,2)", 7, D("7.00")),
    ("decimal(10,2)", " -3.5 ", D("-3.50")), ("decimal(10,0)", "1e3", D("1000")),
    ("int", "  42 ", 42), ("int", "-7", -7), ("int", 3.0, 3), ("int", D("12"), 12),
    ("bigint", 2 ** 63 - 1, 2 ** 63 - 1),
    ("boolean", "yes", True), ("boolean", "FALSE", False), ("boolean", 1, True),
    ("float", 0.1, 0.10000000149011612), ("double", "nan", float("nan")),
    ("string", {"k": "\ud800"}, '{"k":"\\ud800"}'), ("string", {"k": "é"}, '{"k":"é"}'), ("string", True, "true"),
    ("string", 12, "12"), ("string", "é\u2028", "é\u2028"), ("string", b"caf\xc3\xa9", "café"),
    ("binary", "é", "é".encode()), ("binary", b"\xff", b"\xff"),
    ("array<bigint>", ["1", 2, 3.0, None], [1, 2, 3, None]),
    ("map<int,string>", {"1": "x", "2": None}, [(1, "x"), (2, None)]),
    ("struct<a:int,b:string>", {"A": "1", "b": 2, "extra": 0}, {"a": 1, "b": "2"}),
    ("struct<a:int,b:array<timestamp>>", {"a": ""}, {"a": None, "b": None}),
]


@pytest.mark.parametrize("hive,value,expected", GOOD, ids=[f"{h}-{v!r}"[:60] for h, v, _ in GOOD])
def test_a_value_that_fits_converts_exactly_and_builds(hive, value, expected):
    t = hive_type(hive)
    ok, got = convert_one(t, value)
    assert ok, got
    assert norm(t, got) == norm(t, expected)
    assert_builds(t, [got])


def test_the_reason_says_what_is_wrong():
    conv = RowConverter(schema_from_columns([("tags", "array<int>"), ("m", "map<string,int>")]))
    with pytest.raises(MessageError, match=r"column tags: .*\[1\].*bool"):
        conv([[1, True], None])
    with pytest.raises(MessageError, match=r"column m: .*null"):
        conv([None, {None: 1}])
    reason = str(pytest.raises(MessageError, RowConverter(schema_from_columns([("s", "string")])), ["\ud800"]).value)
    assert "surrogate" in reason
    reason.encode("utf-8")  # the reason itself is writable to the quarantine


# -- generated types and values ---------------------------------------------------------------------------------

SCALARS = ["string", "varchar(10)", "char(3)", "tinyint", "smallint", "int", "bigint", "float", "double", "boolean",
           "binary", "timestamp", "date"]
decimals_t = st.integers(1, 38).flatmap(lambda p: st.integers(0, p).map(lambda s: f"decimal({p},{s})"))
scalar_t = st.sampled_from(SCALARS) | decimals_t
field_names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
hive_types = scalar_t.map(hive_type) | st.recursive(
    scalar_t,
    lambda inner: st.one_of(
        inner.map(lambda t: f"array<{t}>"),
        st.tuples(scalar_t, inner).map(lambda kv: f"map<{kv[0]},{kv[1]}>"),
        st.lists(st.tuples(field_names, inner), min_size=1, max_size=3, unique_by=lambda f: f[0]).map(
            lambda fs: "struct<" + ",".join(f"{n}:{t}" for n, t in fs) + ">")),
    max_leaves=5).map(hive_type)

# strings with lone surrogates now and then, and the texts that trip number/time parsers
texts = st.one_of(
    st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=6).map("".join),
    st.sampled_from(["", " ", " 1 ", "0x10", "1_000", "NaN", "nan", "inf", "-Infinity", "1e400", "1e-400", "-0",
                     "9999-12-31T23:30:00-05:00", "0001-01-01T00:30:00+01:00", "2026-11-20T07:00:00Z", "2026-11-20",
                     "true", "yes", "\u0661\u0662", "١.٥", "+5", "9" * 40, str(2 ** 63), str(MAX_MS + 1)]))
offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
datetimes = st.datetimes() | st.datetimes(timezones=offsets)
scalar_values = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.sampled_from([2 ** 7, 2 ** 15, 2 ** 31, 2 ** 63, -2 ** 63 - 1, 2 ** 64, MAX_MS + 1, MIN_MS - 1, 10 ** 40]),
    st.floats(), st.floats(width=32), texts, st.binary(max_size=6),
    st.decimals(allow_nan=True, allow_infinity=True), datetimes, st.dates())
any_values = st.recursive(
    scalar_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=8)


def hashable(k) -> bool:
    return not isinstance(k, (list, dict)) and not (isinstance(k, D) and k.is_snan())


def plausible(t: pa.DataType) -> st.SearchStrategy:
    """Values a parser could hand over for a column of type t: mostly near-misses, some way off."""
    if pa.types.is_integer(t):
        lim = 2 ** (t.bit_width - 1)
        n = st.integers(-lim - 2, lim + 1)
        return st.one_of(n, n.map(str), n.map(float), st.sampled_from([-lim, lim - 1, lim, -lim - 1]))
    if pa.types.is_floating(t):
        return st.floats() | st.floats().map(str) | st.integers() | st.sampled_from([3.5e38, 3.4028235e38, "1e39"])
    if pa.types.is_decimal(t):
        big = 10 ** (t.precision - t.scale)
        d = st.decimals(min_value=-big, max_value=big, allow_nan=False, allow_infinity=False)
        return st.one_of(d, d.map(str), st.floats(), st.integers(-big, big), st.decimals(allow_nan=True))
    if pa.types.is_timestamp(t):
        n = st.integers(MIN_MS - 5, MAX_MS + 5)
        return st.one_of(n, n.map(str), st.floats(min_value=MIN_MS, max_value=MAX_MS), datetimes,
                         datetimes.map(dt.datetime.isoformat), st.dates(), st.sampled_from([MIN_MS, MAX_MS]))
    if pa.types.is_date(t):
        return st.dates() | st.dates().map(str) | datetimes | st.integers(-800_000, 3_000_000)
    if pa.types.is_boolean(t):
        return st.booleans() | st.sampled_from(["true", "False", " yes ", "0", "t", "x", 0, 1, 2])
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return texts | st.binary(max_size=6) | st.integers() | st.booleans()
    if pa.types.is_list(t):
        return st.lists(st.none() | plausible(t.value_type), max_size=4)
    if pa.types.is_map(t):
        keys = plausible(t.key_type).filter(hashable)
        return st.dictionaries(st.none() | keys, st.none() | plausible(t.item_type), max_size=3)
    if pa.types.is_struct(t):
        return st.fixed_dictionaries({f.name: st.none() | plausible(f.type) for f in t})
    raise AssertionError(t)


def native(t: pa.DataType) -> st.SearchStrategy:
    """Values that fit t exactly, as Python hands them over: each must convert and read back unchanged."""
    if pa.types.is_integer(t):
        lim = 2 ** (t.bit_width - 1)
        return st.integers(-lim, lim - 1)
    if pa.types.is_floating(t):
        return st.floats(width=t.bit_width)
    if pa.types.is_decimal(t):
        exact = decimal.Context(prec=100)  # st.decimals and the default context round 38 nines to 1E+38
        big = 10 ** t.precision - 1
        return st.integers(-big, big).map(lambda n: D(n).scaleb(-t.scale, context=exact))
    if pa.types.is_timestamp(t):
        return st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999000)
                            ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
    if pa.types.is_date(t):
        return st.dates()
    if pa.types.is_boolean(t):
        return st.booleans()
    if pa.types.is_string(t):
        return st.text()
    if pa.types.is_binary(t):
        return st.binary()
    if pa.types.is_list(t):
        return st.lists(st.none() | native(t.value_type), max_size=4)
    if pa.types.is_map(t):
        return st.dictionaries(native(t.key_type), st.none() | native(t.item_type), max_size=3)
    if pa.types.is_struct(t):
        return st.fixed_dictionaries({f.name: st.none() | native(f.type) for f in t})
    raise AssertionError(t)


@st.composite
def typed_column(draw, values=None):
    t = draw(hive_types)
    return t, draw(st.lists(values(t) if values else plausible(t) | any_values, min_size=1, max_size=8))


@PROPERTY
@given(typed_column())
def test_converted_values_always_build_and_read_back_as_converted(column):
    t, values = column
    converted = []
    for v in values:
        ok, got = convert_one(t, v)  # anything but a MessageError fails the test here
        if ok:
            converted.append(got)
        else:
            assert got.startswith("column c: "), got
    assert_builds(t, converted)


@PROPERTY
@given(typed_column(values=native))
def test_values_that_fit_convert_unchanged(column):
    t, values = column
    for v in values:
        ok, got = convert_one(t, v)
        assert ok, got
        assert norm(t, got) == norm(t, v)
        assert_builds(t, [got])


# -- column-wise: convert_column and RowConverter.table give exactly what the converter gives row by row ----------

def text_form(t: pa.DataType) -> st.SearchStrategy:
    """What a txt log holds for a column: the text of a value that fits, or of something else."""
    def show(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dt.datetime):
            return str(ms(v)) if v.microsecond % 2 else v.isoformat()
        return v.isoformat() if isinstance(v, dt.date) else v if isinstance(v, str) else str(v)

    if pa.types.is_list(t) or pa.types.is_map(t) or pa.types.is_struct(t):
        return native(t)
    return st.one_of(native(t).map(show), st.just(""), texts)


@st.composite
def column_of(draw, t):
    """Mostly uniform columns (Arrow's path), now and then with values that do not fit mixed in."""
    source = draw(st.sampled_from([native, text_form, plausible]))
    values = draw(st.lists(st.none() | source(t), min_size=1, max_size=12))
    if draw(st.booleans()):
        values.insert(draw(st.integers(0, len(values))), draw(plausible(t) | any_values))
    return values


def _expected(t, values):
    expected, bad = [], {}
    for i, v in enumerate(values):
        ok, got = convert_one(t, v)
        expected.append(got if ok else None)
        if not ok:
            bad[i] = got.removeprefix("column c: ")
    return expected, bad


@PROPERTY
@given(st.data())
def test_convert_column_equals_the_converter_value_by_value(data):
    from pseidon_dagster.core import schemas

    t = data.draw(hive_types)
    values = data.draw(column_of(t))
    chunk = data.draw(st.sampled_from([schemas.COLUMN_CHUNK, 1, 3]))
    saved, schemas.COLUMN_CHUNK = schemas.COLUMN_CHUNK, chunk
    try:
        arr, bad = schemas.convert_column(values, t)
    finally:
        schemas.COLUMN_CHUNK = saved
    expected, expected_bad = _expected(t, values)
    assert arr.type == t and len(arr) == len(values)
    assert bad == expected_bad
    assert [norm(t, x) for x in arr.to_pylist()] == [norm(t, x) for x in expected]


def test_convert_column_takes_arrows_path_for_uniform_columns(monkeypatch):
    from pseidon_dagster.core import schemas

    calls = []
    real = schemas.converter
    monkeypatch.setattr(schemas, "converter", lambda t: calls.append(t) or real(t))
    cases = [("bigint", [1, 2, None]), ("int", ["1", "", "-3"]), ("double", ["1.5", "2e3"]), ("float", [0.1, 2]),
             ("decimal(10,2)", ["1.25", "3"]), ("timestamp", ["1795150800000", "5"]), ("timestamp", [5, None]),
             ("date", ["2026-11-20"]),
             ("boolean", ["true", "0"]), ("string", ["a", "é"]), ("array<string>", [["a", "b"], None]),
             ("array<int>", [["1", "2"], [""]]), ("array<int>", [[1, 2], [3]]),
             ("struct<a:int,b:string>", [{"a": 1}, {"b": "x"}, None]),
             ("map<string,int>", [{"a": 1, "b": None}, None, {}]), ("map<int,double>", [{"1": "2.5"}])]
    for hive, values in cases:
        t = hive_type(hive)
        arr, bad = schemas.convert_column(values, t)
        assert not bad and not calls, hive
        assert [norm(t, x) for x in arr.to_pylist()] == [norm(t, x) for x in _expected(t, values)[0]]
        calls.clear()
    arr, bad = schemas.convert_column(["1", "x", "3"], hive_type("int"))
    assert arr.to_pylist() == [1, None, 3] and list(bad) == [1] and calls


@PROPERTY
@given(st.data())
def test_table_equals_the_converter_row_by_row(data):
    types = data.draw(st.lists(hive_types, min_size=1, max_size=4))
    schema = pa.schema([pa.field(f"c{i}", t) for i, t in enumerate(types)])
    columns = [data.draw(column_of(t)) for t in types]
    n = min(len(c) for c in columns)
    rows = [[c[i] for c in columns] for i in range(n)]
    if data.draw(st.booleans()):
        rows = [{f"C{j}" if j % 2 else f"c{j}": v for j, v in enumerate(r)} for r in rows]  # json: by name
    else:
        rows.append([None] * (len(types) + 1))  # txt: one field too many
    conv = RowConverter(schema)
    table, bad = conv.table(rows)
    expected, expected_bad = [], {}
    for i, r in enumerate(rows):
        try:
            expected.append(conv(r))
        except MessageError as e:
            expected_bad[i] = str(e)
    assert bad == expected_bad
    assert table.schema == schema and table.num_rows == len(expected)
    for j, f in enumerate(schema):
        assert [norm(f.type, x) for x in table.column(j).to_pylist()] == [norm(f.type, r[j]) for r in expected]


def test_a_decimal_too_large_for_its_type_is_refused_not_wrapped():
    """Arrow's decimal cast wraps a value past 128 bits instead of refusing it ('125905' as decimal(35,35) became
    0.5242...): the column path must refuse it as the converter does, never land a different number."""
    from pseidon_dagster.core import schemas

    t = pa.decimal128(35, 35)
    for values in ([decimal.Decimal("125905")], ["125905"], [decimal.Decimal("0.5"), decimal.Decimal("125905")],
                   ["0.25", "125905", None]):
        col, bad = schemas.convert_column(values, t)
        i = values.index(next(v for v in values if v is not None and decimal.Decimal(v) > 1))
        assert i in bad and "digits before the point" in bad[i], (values, bad)
        assert col[i].as_py() is None
        assert [v for j, v in enumerate(col.to_pylist()) if j != i] == [
            None if v is None else decimal.Decimal(v) for j, v in enumerate(values) if j != i]
    cast = schemas.cast_text_column(pa.array(["0.25", "125905"]), t)
    assert cast is None or cast.to_pylist()[1] is None
