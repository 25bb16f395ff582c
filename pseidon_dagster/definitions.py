"""The code location: `dagster dev -w workspace.yaml`, `dagster definitions validate -w workspace.yaml`.

Everything under pseidon_dagster/defs/ is discovered: one folder per domain, one module per Dagster concept (the
dagster-open-platform layout). Each module gives what Dagster's defs-folder loader would take from it: the result of
its `@dg.definitions` functions if it has any, else its module-level assets, checks, jobs, sensors and schedules
(dg.load_definitions_from_module). The modules are walked here rather than with `load_from_defs_folder` or a
`ComponentTree`: the tree would look for pyproject.toml and name the location after the checkout's directory, and
it attaches a catalogue of every installed component type to the definitions, which costs every run worker
~0.5 s of its start (it loads the code location again) and which this project, having no components, does not use.
Built from the package, the location loads the same from a clone, a wheel or a container.
"""
from __future__ import annotations

import importlib
import pkgutil
import warnings
from types import ModuleType

import dagster as dg

from . import defs as defs_package

# The type of what @dg.definitions returns (a lazily built Definitions), found through the public decorator.
_LAZY_DEFINITIONS = type(dg.definitions(lambda: dg.Definitions()))


def defs_modules() -> list[ModuleType]:
    """Every module under pseidon_dagster/defs/, in name order."""
    names = sorted(info.name for info in pkgutil.walk_packages(defs_package.__path__, defs_package.__name__ + ".")
                   if not info.ispkg)
    return [importlib.import_module(name) for name in names]


def _module_defs(module: ModuleType) -> dg.Definitions:
    lazy = [v for v in vars(module).values() if isinstance(v, _LAZY_DEFINITIONS)]
    if lazy:
        return dg.Definitions.merge(*(fn() for fn in lazy))
    return dg.load_definitions_from_module(module)


def build_defs() -> dg.Definitions:
    with warnings.catch_warnings():
        # The module loader calls its own preview-marked helper; that is Dagster's business, not news.
        warnings.filterwarnings("ignore", message=".*load_definitions_from_module", category=dg.PreviewWarning)
        return dg.Definitions.merge(*(_module_defs(m) for m in defs_modules()))


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()
