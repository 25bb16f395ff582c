"""Hour edges, without a server: the last millisecond of an hour stays in it, the first belongs to the next, on the
message path (Router) and the vector path (VectorDecoder) alike, and the accepted window is inclusive at both ends."""
from __future__ import annotations

from pseidon_dagster.core.formats import build_parser
from pseidon_dagster.core.ingest.decode import Decoder
from pseidon_dagster.core.ingest.route import Router
from pseidon_dagster.core.ingest.vector import VectorDecoder
from pseidon_dagster.core.partitioning import HOUR_MS, FileName, hour_key, partition_dir

H = 493_000  # an hour number in 2026
EDGES = [H * HOUR_MS, H * HOUR_MS + HOUR_MS - 1, (H + 1) * HOUR_MS, (H + 1) * HOUR_MS - 1, 0, -1, HOUR_MS - 1]
EXPECTED = [H, H, H + 1, H, 0, -1, 0]


def test_the_message_path_puts_each_edge_in_its_hour():
    ts = EDGES + [None]
    hours = Router(-HOUR_MS, (H + 2) * HOUR_MS, text=False).route(ts, [b""] * len(ts), [0] * len(ts), {})
    assert hours == EXPECTED + [None]


def test_the_vector_path_puts_each_edge_in_its_hour():
    parser = build_parser("txt:sep=,;ts=0")
    vector = VectorDecoder.for_parser(parser, Decoder.for_text(parser).parse, -HOUR_MS, (H + 2) * HOUR_MS)
    values = [f"{t},x".encode() for t in EDGES] * 10  # 70 messages: the vector path takes batches of 64 and more
    batch = vector.decode(values)
    assert batch is not None and batch.good.all()
    assert batch.hours.tolist() == EXPECTED * 10


def test_the_accepted_window_is_inclusive_at_both_ends():
    lo, hi = H * HOUR_MS, H * HOUR_MS + HOUR_MS - 1
    bad: dict[int, str] = {}
    hours = Router(lo, hi, text=False).route([lo - 1, lo, hi, hi + 1], [b""] * 4, [0] * 4, bad)
    assert hours == [None, H, H, None]
    assert sorted(bad) == [0, 3] and all("outside the accepted window" in r for r in bad.values())
    parser = build_parser("txt:sep=,;ts=0")
    vector = VectorDecoder.for_parser(parser, Decoder.for_text(parser).parse, lo, hi)
    batch = vector.decode([f"{t},x".encode() for t in (lo - 1, lo, hi, hi + 1)] * 16)
    assert batch.good.tolist() == [False, True, True, False] * 16


def test_names_and_directories_of_the_edge_hours():
    assert hour_key(H) == "2026-03-29-16:00" and hour_key(H + 1) == "2026-03-29-17:00"
    assert partition_dir("/lake", "raw/clicks", H) == "/lake/raw/clicks/date=20260329/hour=2026032916"
    assert partition_dir("/lake/", "/raw/clicks/", H + 8, hourly=False) == "/lake/raw/clicks/date=20260330"
    name = FileName("clicks", H, 2, 5, 17, "gz")
    assert str(name) == "clicks-2026-03-29-16.p2.o0000000000000000005-0000000000000000017.gz"
    assert FileName.parse(str(name)) == name
    assert FileName.parse("clicks-2026-03-29-16.p2.o5-17.gz") == name  # unpadded names of earlier versions
    # listing order is offset order
    names = [str(FileName("clicks", H, 0, s, e, "gz")) for s, e in ((9, 10), (10, 100), (100, 1000))]
    assert sorted(names) == names
