"""Where files live: local disk or any pyarrow filesystem URI (hdfs://, s3://, ...). Files are written under a
hidden temporary name in their final directory and published by rename (atomic on local disk and HDFS)."""
from __future__ import annotations

import os
import posixpath

import pyarrow.fs as pafs


class Storage:
    def __init__(self, fs: pafs.FileSystem, local: bool):
        self.fs = fs
        self.local = local

    @classmethod
    def for_path(cls, path: str) -> tuple["Storage", str]:
        """The filesystem for PATH and PATH as that filesystem names it."""
        if "://" in path and not path.startswith("file://"):
            fs, p = pafs.FileSystem.from_uri(path)
            return cls(fs, False), p
        if path.startswith("file://"):
            path = path[len("file://"):]
        return cls(pafs.LocalFileSystem(), True), os.path.abspath(path)

    @staticmethod
    def temp_name(path: str) -> str:
        d, name = posixpath.split(path)
        return posixpath.join(d, f".{name}.tmp")

    def makedirs(self, path: str) -> None:
        self.fs.create_dir(path, recursive=True)

    def open_output(self, path: str):
        return self.fs.open_output_stream(path, compression=None, buffer_size=None)

    def publish(self, tmp: str, final: str) -> None:
        if self.local:
            os.replace(tmp, final)
        else:
            self.fs.move(tmp, final)

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def size(self, path: str) -> int:
        return self.fs.get_file_info(path).size or 0

    def list_files(self, root: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return sorted(i.path for i in info if i.type == pafs.FileType.File)
