"""The input and output format tables: every entry works, unknown names fail clearly, the README names the same."""
from __future__ import annotations

import ast
import bz2
import gzip
import io
import re
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard
from pyarrow.fs import LocalFileSystem

from pseidon_dagster.core import output_formats
from pseidon_dagster.core.formats import INPUT_FORMATS, Descriptor, DescriptorError, build_parser, parse_descriptor
from pseidon_dagster.core.output_formats import (
    OUTPUT_FORMATS,
    OutputFormatError,
    count_records,
    format_of_file,
    open_text,
    output_format,
    text_chunks,
)
from pseidon_dagster.devstack.demo import count_lines
from tests import REPO_ROOT as REPO
from tests.unit.core.formats.test_formats_avro import LINE_SCHEMA, FakeRegistry, encode

TS = 1_700_000_000_000

# name -> (descriptor, message, its line, its row); one per input format, so a new format needs a sample here
INPUT_SAMPLES = {
    "txt": ("txt:sep=pipe;ts=0;msg=1:", f"{TS}|u1|/p".encode(), b"u1|/p\n", ["u1", "/p"]),
    "json": ("json:ts=meta.time;msg=id,user", b'{"meta": {"time": %d}, "id": 7, "user": "ann"}' % TS,
             b'{"id":7,"user":"ann"}\n', {"id": 7, "user": "ann"}),
    "avro-txt": ("avro-txt:ts=0;msg=1", encode(LINE_SCHEMA, {"timestamp": TS, "line": "hello"}, 1), b"hello\n",
                 {"line": "hello"}),
}


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    r = FakeRegistry({1: LINE_SCHEMA})  # the in-process stand-in of test_formats_avro
    yield r
    r.close()


def test_every_input_format_has_a_sample():
    assert list(INPUT_SAMPLES) == list(INPUT_FORMATS)


@pytest.mark.parametrize("name", list(INPUT_FORMATS))
def test_every_input_format_parses_a_sample_message(name, registry):
    text, message, line, row = INPUT_SAMPLES[name]
    d = parse_descriptor(text)
    assert d.type == name and INPUT_FORMATS[name].name == name
    assert INPUT_FORMATS[name].spec(d) is not None
    parser = build_parser(text, schema_registry_url=registry.url)
    assert parser.type == name
    assert parser.line(message) == (TS, line)
    assert parser.row(message) == (TS, row)
    assert build_parser(d, schema_registry_url=registry.url).line(message) == (TS, line)  # a Descriptor as well


def test_an_unknown_input_format_names_the_known_ones():
    with pytest.raises(DescriptorError) as e:
        parse_descriptor("csv:ts=0")
    assert str(e.value) == "unknown format type 'csv' in 'csv:ts=0'; expected one of txt, json, avro-txt"
    with pytest.raises(DescriptorError) as e:
        build_parser(Descriptor("csv", {}, "csv:ts=0"))
    assert str(e.value) == "unknown format type 'csv'"


LINES = [f"{TS + i}|user-{i % 7}|/page/{i}".encode() + b"\n" for i in range(5000)]
SCHEMA = pa.schema([("ts", pa.int64()), ("user", pa.string())])
ROWS = [(TS + i, f"user-{i % 7}") for i in range(5000)]
STDLIB_DECODERS = {"gzip": gzip.decompress, "bzip2": bz2.decompress, "txt": bytes,
                   "zstd": lambda b: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b)).read()}


def write(name: str, directory: Path) -> Path:
    """A file of format NAME written by the table's writer, named with the table's extension."""
    fmt = OUTPUT_FORMATS[name]
    path = directory / f"sample.{fmt.extension}"
    with open(path, "wb") as stream:
        w = fmt.open_writer(stream, schema=SCHEMA, row_group_bytes=20_000)
        if fmt.decompress is None:
            w.write(ROWS, 20 * len(ROWS))
        else:
            w.write(b"".join(LINES[:1000]))
            w.write(b"".join(LINES[1000:]))
        w.close()
    return path


@pytest.mark.parametrize("name", list(OUTPUT_FORMATS))
def test_every_output_format_counts_the_records_it_wrote(name, tmp_path):
    path = write(name, tmp_path)
    assert format_of_file(str(path)) is OUTPUT_FORMATS[name]
    assert count_records(LocalFileSystem(), str(path)) == 5000
    assert count_lines(path)[0] == 5000  # the demo counts with the same table
    if name == "parquet":
        return
    assert b"".join(text_chunks(LocalFileSystem(), str(path), size=4096)) == b"".join(LINES)
    assert STDLIB_DECODERS[name](path.read_bytes()) == b"".join(LINES)  # readable without this code
    assert count_lines(path)[1] == [line.decode().rstrip("\n") for line in LINES[:2]]


@pytest.mark.parametrize("name", [n for n, f in OUTPUT_FORMATS.items() if f.decompress is not None])
def test_open_text_is_the_tables_text_writer(name):
    class Kept(io.BytesIO):
        def close(self):
            pass

    via_open_text, via_table = Kept(), Kept()
    for w in (open_text(via_open_text, name, 2, 5),
              OUTPUT_FORMATS[name].open_writer(via_table, gzip_level=2, zstd_level=5)):
        w.write(b"".join(LINES))
        w.close()
    assert via_open_text.getvalue() == via_table.getvalue()


def test_unknown_output_formats_fail_as_before():
    with pytest.raises(OutputFormatError) as e:
        output_format("lzo")
    assert str(e.value) == ("'lzo' is not one of gzip, txt, bzip2, zstd, parquet (aliases: json/avro = gzip, "
                            "empty/none = txt)")
    with pytest.raises(OutputFormatError, match="'snappy' text files are not readable by Hive"):
        output_format("snappy")
    with pytest.raises(OutputFormatError) as e:
        open_text(io.BytesIO(), "parquet")
    assert str(e.value) == "no text writer for 'parquet'"


def test_every_output_format_alias_names_a_table_entry():
    assert {output_format(a) for a in output_formats._ALIASES} == set(OUTPUT_FORMATS)
    assert format_of_file("log-2026-01-01-00.p0.o1-2.jsonl.gz").name == "gzip"
    assert format_of_file("no-known-extension.tmp").name == "txt"


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readme_lists_the_input_formats_of_the_table():
    block = readme_section("Formats in and out").split("```")[1]
    named = {line.split(":", 1)[0].strip() for line in block.splitlines() if ":" in line.split(" ", 1)[0]}
    assert named == set(INPUT_FORMATS)


def test_the_readme_lists_the_output_formats_and_extensions_of_the_table():
    section = readme_section("Formats in and out")
    named = dict(re.findall(r"`([\w-]+)` → `\.([\w.]+)`", section))
    assert named == {name: f.extension for name, f in OUTPUT_FORMATS.items()}


def imports_of(path: Path, package: str) -> set[str]:
    """The modules of PACKAGE that a module imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(f"{package}.{node.module.split('.')[0]}")
    return found


def test_the_format_modules_import_each_other_without_a_circle():
    core = REPO / "pseidon_dagster" / "core"
    graph = {f"formats.{p.stem}": imports_of(p, "formats") for p in (core / "formats").glob("*.py")}
    graph.update({m: {i.replace("core.", "") for i in imports_of(core / f"{m}.py", "core")}
                  for m in ("output_formats", "writers")})
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join(path + (module,))}"
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, path + (module,))
        done.add(module)

    for module in graph:
        visit(module, ())
