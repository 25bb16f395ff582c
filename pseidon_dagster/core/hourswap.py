"""The atomic swap of an hour directory (backfills, rebuild.py), step by step, and how an interrupted one is finished.

For one hour whose new files are complete in a fresh directory (outside the log's tree, on its filesystem):
    A. Hive (logs with hive_url): the partition's LOCATION is set to the fresh directory -- one ALTER TABLE;
    B. directory readers: a copy of the fresh directory (hard links) is exchanged with the hour's directory in one
       renameat2(RENAME_EXCHANGE), so `hour=H/` holds either every old file or every new one;
    C. Hive: the LOCATION is set back to `hour=H/` (same new files);
    D. the fresh directory and the old files are removed; the rebuild's quarantine files are published.
Each step is recorded in Redis (fenced by the lease) before the next; `finish_pending` rolls a killed rebuild back
(before A: the hour keeps its files) or forward (after A), and runs before any rebuild or tail run writes.
"""
from __future__ import annotations

import ctypes
import logging
import os
import shutil
from collections.abc import Callable

from . import failpoints
from .config import Settings
from .hive import partition_spec, partition_values
from .lease import Lease
from .model import LogSpec
from .offsets import OffsetStore
from .partitioning import hour_start

log = logging.getLogger(__name__)

REBUILD_QUARANTINE_EXT = "rebuild.jsonl.gz"


def remove_dirs(*dirs: str) -> None:
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def remove_work_dirs(state: dict) -> None:
    """Remove a rebuild's work directories (<root>/.rebuild/<log>-<token>) and `.rebuild` when it is left empty."""
    for work in state.get("work", []):
        remove_dirs(work)
        try:
            os.rmdir(os.path.dirname(work))
        except OSError:
            pass  # another log's rebuild is using it


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: str, b: str) -> None:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, a.encode(), _AT_FDCWD, b.encode(), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2(RENAME_EXCHANGE) {a} <-> {b}: {os.strerror(err)}")


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_files(a: str, b: str) -> bool:
    """Do directories A and B hold the same files (hard links of each other)?"""
    def inodes(d):
        return {(n, os.stat(os.path.join(d, n)).st_ino) for n in os.listdir(d)}
    return os.path.isdir(a) and os.path.isdir(b) and inodes(a) == inodes(b)


def swap_hour(settings: Settings, spec: LogSpec, store: OffsetStore, lease: Lease, state: dict, hour: int,
              catalog: Callable) -> list[str]:
    """Steps A-D for one hour whose fresh directory is complete (state step 'written' or later)."""
    st = state["hours"][str(hour)]
    d, fresh = st["dir"], st["fresh"]
    swap = fresh + ".old"
    cat = catalog()
    values = None
    registered: list[str] = []

    def save(step: str) -> None:
        st["step"] = step
        store.save_rebuild(spec.log, state, lease)

    if cat is not None:
        values = partition_values(settings, spec, hour)
        registered = [partition_spec(values)]
    if st["step"] == "written":
        if cat is not None and os.path.isdir(d):
            c, db, table = cat
            c.add_partitions(db, table, [(values, "file://" + fresh)])  # A: Hive reads the new files
        save("hive-new")
        failpoints.pause("swap-hive-new")
    if st["step"] == "hive-new":
        lease.check()
        if os.path.isdir(d):
            if not os.path.isdir(swap):
                _link_copy(fresh, swap)
            if _same_files(swap, fresh):
                _fsync_dir(swap)
                exchange(swap, d)  # B: directory readers see every new file at once; `swap` holds the old ones
        else:
            os.makedirs(os.path.dirname(d), mode=0o750, exist_ok=True)
            _link_copy(fresh, swap)
            _fsync_dir(swap)
            os.rename(swap, d)
        _fsync_dir(os.path.dirname(d))
        failpoints.pause("swap-exchanged")
        save("swapped")
    if st["step"] == "swapped":
        if cat is not None:
            c, db, table = cat
            c.add_partitions(db, table, [(values, "file://" + d)])  # C: back to the hour's own directory
        save("hive-back")
    if st["step"] == "hive-back":
        _publish_quarantine(st)
        remove_dirs(fresh, swap)  # D
        del state["hours"][str(hour)]
        store.save_rebuild(spec.log, state, lease)
    return registered


def _link_copy(src: str, dst: str) -> None:
    os.makedirs(dst, mode=0o750)
    for n in os.listdir(src):
        os.link(os.path.join(src, n), os.path.join(dst, n))


def _publish_quarantine(st: dict) -> None:
    """Move the rebuild's quarantine files into the hour's quarantine directory, replacing an earlier rebuild's."""
    qfresh = st.get("qfresh")
    if not qfresh:
        return  # a compaction: the hour's quarantine is left as it is
    qdir = st["qdir"]  # recorded with qfresh (HourRewriter._record_fresh)
    new = set(os.listdir(qfresh)) if os.path.isdir(qfresh) else set()
    if os.path.isdir(qdir):
        for n in os.listdir(qdir):
            if n.endswith("." + REBUILD_QUARANTINE_EXT) and n not in new:
                os.unlink(os.path.join(qdir, n))
    if new:
        os.makedirs(qdir, mode=0o750, exist_ok=True)
        for n in sorted(new):
            os.replace(os.path.join(qfresh, n), os.path.join(qdir, n))
        _fsync_dir(qdir)
    remove_dirs(qfresh)


def finish_pending(settings: Settings, spec: LogSpec, store: OffsetStore, lease: Lease, catalog: Callable) -> None:
    """Finish what a killed rebuild of the log left: hours not yet switched in Hive are rolled back (their fresh
    directories removed, the old hour stays); hours already switched are rolled forward to the end. The caller holds
    the lease (a rebuild, or a tail run before it writes)."""
    state = store.load_rebuild(spec.log)
    if not state:
        return
    for key in sorted(state["hours"], key=int):
        st = state["hours"][key]
        if st["step"] in ("writing", "written"):
            log.warning("%s: rolling back the unfinished rebuild of %s (the hour keeps its files)", spec.log,
                        f"{hour_start(int(key)):%Y-%m-%d %H}:00")
            remove_dirs(st["fresh"], st["fresh"] + ".old", *([st["qfresh"]] if st.get("qfresh") else []))
            del state["hours"][key]
            store.save_rebuild(spec.log, state, lease)
        else:
            log.warning("%s: finishing the interrupted rebuild of %s (step %s)", spec.log,
                        f"{hour_start(int(key)):%Y-%m-%d %H}:00", st["step"])
            swap_hour(settings, spec, store, lease, state, int(key), catalog)
    remove_work_dirs(state)
    store.clear_rebuild(spec.log, lease)
