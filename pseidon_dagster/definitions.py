"""The code location: `dagster dev -w workspace.yaml`, `dagster definitions validate -w workspace.yaml`.

Everything under pseidon_dagster/defs/ is discovered by Dagster's defs-folder loader: one folder per domain, one
file per Dagster concept (the dagster-open-platform layout). The tree is built from the package itself rather than
with `load_from_defs_folder`, which would look for pyproject.toml and name the location after the checkout's
directory; this way the location loads the same from a clone, a wheel or a container.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from . import defs as defs_package


def build_defs() -> dg.Definitions:
    with warnings.catch_warnings():
        # The defs-folder loader calls its own preview-marked helpers; that is Dagster's business, not news.
        warnings.filterwarnings("ignore", message=".*load_definitions_from_module", category=dg.PreviewWarning)
        tree = dg.ComponentTree.from_module(defs_module=defs_package, project_root=Path(__file__).parent.parent)
        return tree.build_defs()


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()
