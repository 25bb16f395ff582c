"""Where files live: local disk or any pyarrow filesystem URI (hdfs://, s3://, ...).

Files are written under a hidden temporary name in their final directory and published by rename (atomic on local
disk and HDFS). On local disk:
- a temporary file is created exclusively (O_EXCL) and never through a symlink (O_NOFOLLOW), readable by owner and
  group only; directories are created 0o750;
- no file descriptor is held between writes: a file being written is a buffer that is appended to its temporary
  file when it fills (open, write, close), so a run with thousands of open hour files stays far below `ulimit -n`;
- closing a file fsyncs it before it can be renamed, and `sync_dirs` fsyncs the directories after the renames, so
  what a run publishes is on stable storage before its offsets are committed.
"""
from __future__ import annotations

import os
import posixpath
import stat

import pyarrow.fs as pafs

from .paths import makedirs_private

FILE_MODE = 0o640
APPEND_CHUNK = 64 << 10  # bytes a file buffers before they are appended to its temporary file
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class LocalOutput:
    """A local file being written, without a file descriptor held between writes."""

    def __init__(self, path: str, sync: bool = True):
        self.path = path
        self.sync = sync
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
        os.close(fd)
        self._buf = bytearray()
        self._written = 0
        self.closed = False

    def write(self, data) -> int:
        self._buf += data
        if len(self._buf) >= APPEND_CHUNK:
            self._append(sync=False)
        return len(data)

    def tell(self) -> int:
        return self._written + len(self._buf)

    def flush(self) -> None:
        pass

    def _append(self, sync: bool) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
        try:
            view = memoryview(self._buf)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._written += len(self._buf)
        self._buf = bytearray()

    def close(self) -> None:
        if not self.closed:
            self._append(sync=self.sync)
            self.closed = True

    # what pyarrow's PythonFile wrapper asks of a file object
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class Storage:
    def __init__(self, fs: pafs.FileSystem, local: bool, prefix: str = ""):
        self.fs = fs
        self.local = local
        self.sync = True  # fsync files before they are renamed and directories after (:writer :fsync)
        self.prefix = prefix  # scheme://authority of a remote filesystem, so a path can be made a URI again

    @classmethod
    def for_path(cls, path: str) -> tuple[Storage, str]:
        """The filesystem for PATH and PATH as that filesystem names it."""
        if "://" in path and not path.startswith("file://"):
            fs, p = pafs.FileSystem.from_uri(path)
            i = path.find(p.lstrip("/"), path.index("://") + 3) if p.strip("/") else len(path)
            prefix = path[:i].rstrip("/") if i > 0 else path.split("://")[0] + "://"
            return cls(fs, False, prefix), p
        if path.startswith("file://"):
            path = path[len("file://"):]
        return cls(pafs.LocalFileSystem(), True), os.path.abspath(path)

    def uri(self, path: str) -> str:
        """PATH (as this filesystem names it) as a string Storage.for_path turns back into this file."""
        if self.local:
            return path
        return f"{self.prefix}/{path.lstrip('/')}" if not self.prefix.endswith("://") else self.prefix + path

    def makedirs(self, path: str, root: str | None = None) -> None:
        """Create PATH and its parents; on local disk 0o750 whatever the umask, and below ROOT without following a
        symlink (paths.makedirs_private)."""
        if self.local:
            makedirs_private(path, root)
        else:
            self.fs.create_dir(path, recursive=True)

    def open_output(self, path: str):
        """A new file at PATH (a temporary name); fails if PATH exists."""
        if self.local:
            return LocalOutput(path, self.sync)
        return self.fs.open_output_stream(path, compression=None, buffer_size=None)

    def publish(self, tmp: str, final: str) -> None:
        if self.local:
            os.replace(tmp, final)
        else:
            self.fs.move(tmp, final)

    def sync_dirs(self, dirs) -> None:
        """fsync directories, so the renames in them survive a power loss (local disk; remote stores are durable
        when a write completes)."""
        if not self.local or not self.sync:
            return
        for d in sorted(set(dirs)):
            fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def delete(self, path: str) -> bool:
        try:
            if self.local:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    return False
                os.unlink(path)
            else:
                self.fs.delete_file(path)
            return True
        except FileNotFoundError:
            return False

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def size(self, path: str) -> int:
        return self.fs.get_file_info(path).size or 0

    def list_files(self, root: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return sorted(i.path for i in info if i.type == pafs.FileType.File)

    @staticmethod
    def parent(path: str) -> str:
        return posixpath.dirname(path)
