"""The code location is built from the defs package's modules directly (definitions.py), not through Dagster's
ComponentTree, because the tree also attaches a catalogue of every installed component type, which every run worker
paid for on each start. The definitions must be exactly what the tree gives; and a definitions load must not pull
in what no ingest run needs (the backfill's rebuild machinery)."""
from __future__ import annotations

import subprocess
import sys
import warnings

import dagster as dg

from pseidon_dagster import defs as defs_package
from pseidon_dagster.definitions import build_defs
from tests import REPO_ROOT as REPO


def describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "executable": sorted(k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_executable),
        "checks": sorted(str(k) for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs()),
        "sensors": sorted(s.name for s in defs.sensors or []),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "resources": sorted(defs.resources or {}),
    }


def test_the_same_definitions_as_the_component_tree():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = dg.ComponentTree.from_module(defs_module=defs_package, project_root=REPO).build_defs()
    ours = build_defs()
    assert describe(ours) == describe(tree)
    assert describe(ours)["jobs"] == ["__ASSET_JOB", "compact_job", "hive_table_job", "ingest_job", "redrive_job",
                                      "retention_job"]


def test_loading_the_definitions_leaves_the_rebuild_machinery_unimported():
    code = ("import sys, pseidon_dagster.definitions as d; d.build_defs(); "
            "print(sorted(m for m in ('pseidon_dagster.core.rebuild', 'pseidon_dagster.core.hourswap') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
