"""The output formats (the `output_format` column): one table of file extension, writer and record counter each."""
from __future__ import annotations

import bz2
import dataclasses
import gzip
from collections.abc import Callable, Iterator
from typing import Any

from isal import isal_zlib

from .writers import ParquetFile, TextFile


class OutputFormatError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """One output format: the extension of its files, how to write one and how to count the records of one."""

    name: str
    extension: str  # of its file names, without the dot
    # (stream, *, gzip_level, zstd_level, schema, parquet_codec, row_group_bytes) -> writer; each uses its own
    open_writer: Callable[..., TextFile | ParquetFile]
    count_records: Callable[[Any, str], int]  # (pyarrow filesystem, path of a published file) -> records
    decompress: Callable[[Any], Any] | None  # text formats: file stream -> stream of its text; None for Parquet


def _gzip_writer(stream, *, gzip_level: int = 1, **_) -> TextFile:
    # wbits=31: gzip container, mtime 0, so a replayed plan writes byte-identical files.
    return TextFile(stream, isal_zlib.compressobj(gzip_level, isal_zlib.DEFLATED, 31))


def _txt_writer(stream, **_) -> TextFile:
    return TextFile(stream, None)


def _bzip2_writer(stream, **_) -> TextFile:
    return TextFile(stream, bz2.BZ2Compressor(9))


def _zstd_writer(stream, *, zstd_level: int = 3, **_) -> TextFile:
    import zstandard

    return TextFile(stream, zstandard.ZstdCompressor(level=zstd_level).compressobj())


def _parquet_writer(stream, *, schema, parquet_codec: str = "snappy", row_group_bytes: int = 20 << 20,
                    **_) -> ParquetFile:
    return ParquetFile(stream, schema, parquet_codec, row_group_bytes)


def _gunzip(raw):
    return gzip.GzipFile(fileobj=raw)


def _as_is(raw):
    return raw


def _unzstd(raw):
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(raw)


def _count_lines(fs, path: str) -> int:
    return sum(chunk.count(b"\n") for chunk in text_chunks(fs, path))


def _count_rows(fs, path: str) -> int:
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


OUTPUT_FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("gzip", "gz", _gzip_writer, _count_lines, _gunzip),
    OutputFormat("txt", "txt", _txt_writer, _count_lines, _as_is),
    OutputFormat("bzip2", "bz2", _bzip2_writer, _count_lines, bz2.BZ2File),
    OutputFormat("zstd", "zst", _zstd_writer, _count_lines, _unzstd),
    OutputFormat("parquet", "parquet", _parquet_writer, _count_rows, None),
)}
BY_EXTENSION: dict[str, OutputFormat] = {f.extension: f for f in OUTPUT_FORMATS.values()}

_ALIASES = {
    None: "txt", "": "txt", "txt": "txt", "none": "txt", "text": "txt",
    "gzip": "gzip", "gz": "gzip",
    # The original wrote gzip-compressed text for these (original-behavior.md section 1.2).
    "json": "gzip", "avro": "gzip",
    "bzip2": "bzip2", "bz2": "bzip2",
    "zstd": "zstd", "zst": "zstd",
    "parquet": "parquet",
}


def output_format(value: str | None) -> str:
    """The table's name for an `output_format` cell (aliases allowed); OutputFormatError if it names none."""
    key = value.strip().lower() if isinstance(value, str) else value
    if key in _ALIASES:
        return _ALIASES[key]
    if key == "snappy":
        raise OutputFormatError("'snappy' text files are not readable by Hive; use gzip, zstd, bzip2, txt or parquet")
    raise OutputFormatError(f"{value!r} is not one of {', '.join(OUTPUT_FORMATS)} (aliases: json/avro = gzip, "
                            f"empty/none = txt)")


def format_of_file(path: str) -> OutputFormat:
    """The output format of a published file, by its extension; a file of no known extension is plain text."""
    for f in OUTPUT_FORMATS.values():
        if path.endswith("." + f.extension):
            return f
    return OUTPUT_FORMATS["txt"]


def open_text(stream, codec: str, gzip_level: int = 1, zstd_level: int = 3) -> TextFile:
    """A writer of text format CODEC (a table name) on STREAM."""
    fmt = OUTPUT_FORMATS.get(codec)
    if fmt is None or fmt.decompress is None:
        raise OutputFormatError(f"no text writer for {codec!r}")
    writer = fmt.open_writer(stream, gzip_level=gzip_level, zstd_level=zstd_level)
    assert isinstance(writer, TextFile)  # every format with a decompressor writes text
    return writer


def count_records(fs, path: str) -> int:
    """Records in a published file of any output format: lines of text (decompressed), rows of Parquet."""
    return format_of_file(path).count_records(fs, path)


def text_chunks(fs, path: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The decompressed bytes of a published text file, a chunk at a time."""
    decompress = format_of_file(path).decompress or _as_is
    with fs.open_input_stream(path, compression=None) as raw:
        stream = decompress(raw)
        while chunk := stream.read(size):
            yield chunk
