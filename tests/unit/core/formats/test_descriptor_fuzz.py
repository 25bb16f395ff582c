"""Fuzzing descriptors (issue 8, Proof): PSEIDON_FUZZ_DESCRIPTORS descriptors (default 2,000; full run 100,000)
mutated from the documented ones (docs/formats.md), from a generator seeded by PSEIDON_FUZZ_SEED (default 8), raise
nothing but DescriptorError from parse_descriptor/build_parser, and the two agree.
(tests/unit/core/formats/test_formats_property.py covers random text and the grammar with hypothesis; this adds
mutations of real descriptors.) A sample of them as pseidon_logs rows, then full ingests:
tests/integration/system/test_fuzz.py.
Full run:  PSEIDON_FUZZ_DESCRIPTORS=100000 make test PYTEST_ARGS=tests/unit/core/formats/test_descriptor_fuzz.py
"""
from __future__ import annotations

import collections
import os
import random
import zlib

from pseidon_dagster.core.formats import DescriptorError, build_parser, parse_descriptor

SEED = int(os.environ.get("PSEIDON_FUZZ_SEED", "8"))
DESCRIPTORS = int(os.environ.get("PSEIDON_FUZZ_DESCRIPTORS", "2000"))


def rng_for(name: str) -> random.Random:
    """A generator of its own per NAME, from PSEIDON_FUZZ_SEED."""
    return random.Random(SEED * 1_000_003 + zlib.crc32(name.encode()))


SEED_DESCRIPTORS = [
    "txt:sep=pipe;ts=0", "txt:sep=tab;ts_sec=3;msg=1:-1", "txt:ts=0;msg=1", "json:ts=meta.time;msg=id,user",
    "avro-txt:ts=0;msg=1", "avro-txt:ts_sec=created", "txt:ts=0;sep=byte1;msg=1", "txt:sep=pipe;ts=3;msg=1",
    "txt:sep=,;ts=0;msg=2", "txt:sep=\\x3b;ts_ms=2;msg=0:2", "txt:sep=\\u00a7;ts=-1", "json:ts_sec=t;msg=a.b,c",
    "json:ts=items.0.t", "avro-txt:ts=meta.time;msg=-1", "TXT : SEP = Pipe ; TS = 0 ;;", "json:ts=-1",
]
INSERTS = [";", ":", "=", ",", ".", "-", "\\", "\\x", "\\u", "\\U0010FFFF", "\\ud800", "\ud800", "\x00", "\n", "\r",
           "\t", " ", "١", "9" * 40, "-1", "ts=", "msg=", "sep=", "sep=;", "ts_ms=", "ts_sec=", "avro-txt", "json",
           "txt", "§", "😀", "\u2028", "\ufeff", "%", "'", '"', "ts=0", ";ts=1", "msg=1:2:3", "sep=byte1"]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(text) + 1)
        if op == 0:
            text = text[:i] + rng.choice(INSERTS) + text[i:]
        elif op == 1 and text:
            j = min(len(text), i + rng.randrange(1, 6))
            text = text[:i] + text[j:]
        elif op == 2 and text:
            text = text[:i] + chr(rng.randrange(0x20, 0x2FF)) + text[i + 1:]
        elif op == 3:
            text = text + rng.choice(INSERTS) + rng.choice(INSERTS)
        else:
            parts = text.split(";")
            rng.shuffle(parts)
            text = ";".join(parts)
    return text


def fuzzed_descriptors(n: int) -> list[str]:
    rng = rng_for("descriptors")
    return [mutate(rng, rng.choice(SEED_DESCRIPTORS)) for _ in range(n)]


def outcome(text: str) -> str:
    """'ok' or 'DescriptorError'; anything else raised fails the test."""
    try:
        parse_descriptor(text)
        parsed = "ok"
    except DescriptorError:
        parsed = "DescriptorError"
    try:
        build_parser(text, schema_registry_url="http://127.0.0.1:1")
        built = "ok"
    except DescriptorError:
        built = "DescriptorError"
    assert parsed == built, text
    return parsed


def test_fuzzed_descriptors_raise_only_descriptor_errors():
    counts = collections.Counter(outcome(d) for d in fuzzed_descriptors(DESCRIPTORS))
    print(f"\nFUZZ descriptors: {DESCRIPTORS} mutated: {dict(counts)}")
    assert counts["ok"] > 0 and counts["DescriptorError"] > 0
