"""Dagster definitions, one folder per domain (the dagster-open-platform layout).

`pseidon_dagster.definitions` loads this folder with Dagster's defs-folder loader; every module here holds one
Dagster concept. The plain-Python ingestion core (`pseidon_dagster.core`) imports nothing from Dagster.
"""
