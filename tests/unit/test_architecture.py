"""The shape the README's Layout promises, checked on the source (no servers): the core imports no Dagster, production
code never imports the devstack, only public Dagster APIs are used, and a long module says why it is long."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests import REPO_ROOT

PACKAGE = REPO_ROOT / "pseidon_dagster"
LONG = 400


def modules(*parts: str) -> list[Path]:
    return sorted((PACKAGE.joinpath(*parts)).rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, function-level ones included."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}" if not node.module else base) for alias in node.names]
    return found


def offenders(paths: list[Path], bad) -> list[str]:
    return [f"{p.relative_to(PACKAGE.parent)}:{line}: {name}" for p in paths for line, name in imported(p) if bad(name)]


def test_imports_are_resolved_to_absolute_names():
    names = dict((n, line) for line, n in imported(PACKAGE / "devstack" / "demo.py"))
    assert "pseidon_dagster.core.offsets" in names and "pseidon_dagster.devstack.services" in names


def test_the_core_imports_no_dagster():
    assert offenders(modules("core"), lambda n: n == "dagster" or n.startswith("dagster.") or n.startswith("dagster_")
                     ) == []


def test_production_code_never_imports_the_devstack():
    production = modules("core") + modules("defs") + [PACKAGE / "definitions.py"]
    assert offenders(production, lambda n: n.startswith("pseidon_dagster.devstack")) == []


def test_only_public_dagster_apis():
    assert offenders(modules(), lambda n: n.startswith("dagster._") or ".._" in n and n.startswith("dagster")) == []


@pytest.mark.parametrize("path", [p for p in modules() if len(p.read_text().splitlines()) > LONG],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_long_module_says_why_at_its_top(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    lines = len(path.read_text().splitlines())
    assert re.search(r"(Long|Over \d+ lines) because", doc), (
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines (> {LONG}): split it, or say at its top why not "
        "('Long because ...')")


def test_nothing_imports_the_hive_client_that_was_replaced():
    """PyHive gave way to impyla (not installed any more): a leftover import, in a shell script's inline Python too,
    would fail only where its error is hidden (ci-local.sh's cleanup once dropped its Hive database that way)."""
    roots = [PACKAGE, REPO_ROOT / "tests", REPO_ROOT / "scripts", REPO_ROOT / "bench", REPO_ROOT / "vagrant",
             REPO_ROOT / "deploy", REPO_ROOT / ".ci"]
    files = [p for r in roots for p in r.rglob("*") if p.is_file() and p.suffix in ("", ".py", ".sh", ".yaml", ".yml")
             and p != Path(__file__)]
    assert len(files) > 100
    assert [str(p.relative_to(REPO_ROOT)) for p in files
            if re.search(r"(from|import) pyhive\b", p.read_text(errors="replace"))] == []


def own_imports_inside_functions(path: Path) -> list[str]:
    """Imports of the package's own modules made inside a function (the usual way to dodge an import circle), but
    those whose line says why they are lazy ('# lazy: ...')."""
    lines = path.read_text().splitlines()
    found = []
    for fn in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} in {fn.name}()" for node in ast.walk(fn)
                      if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                          "pseidon_dagster")) and "# lazy:" not in lines[node.lineno - 1]]
    return found


def test_the_core_imports_its_own_modules_at_the_top():
    """core/ has no import circle to dodge: each of its modules imports the others it needs at the top, so the import
    graph is what the top of each file says. A lazy import says why on its line. (The CLI and the Dagster layer import
    lazily for start-up time.)"""
    assert [hit for p in modules("core") for hit in own_imports_inside_functions(p)] == []
