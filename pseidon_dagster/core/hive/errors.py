"""The one error of the hive package."""
from __future__ import annotations


class CatalogError(RuntimeError):
    """Hive registration/DDL failed or was refused. The message names the log, table and partitions where known,
    and the server's error; it never contains a password."""
