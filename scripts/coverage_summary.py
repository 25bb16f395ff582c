"""Print the branch coverage of the last `make test`, per package folder (core/, defs/, ...), and the files of core/
with the most branches left uncovered. Reads var/coverage/.coverage (pyproject.toml [tool.coverage]).

    python scripts/coverage_summary.py [--data var/coverage/.coverage] [--worst 10]
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import coverage

PACKAGE = "pseidon_dagster"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="var/coverage/.coverage")
    ap.add_argument("--worst", type=int, default=10)
    args = ap.parse_args()
    cov = coverage.Coverage(data_file=args.data)
    try:
        cov.combine(keep=True)  # subprocesses' files left over (pytest-cov combines the rest)
    except coverage.exceptions.NoDataError:
        pass
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out), ignore_errors=True)
        files = json.loads(out.read_text())["files"]
    per_dir: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    missing_in_core = []
    for name, f in files.items():
        parts = Path(name).parts
        top = parts[parts.index(PACKAGE) + 1] if PACKAGE in parts and len(parts) > parts.index(PACKAGE) + 2 else "(top)"
        s = f["summary"]
        acc = per_dir[top]
        acc[0] += s["covered_branches"]
        acc[1] += s["num_branches"]
        acc[2] += s["covered_lines"]
        acc[3] += s["num_statements"]
        if top == "core":
            missing_in_core.append((s["num_branches"] - s["covered_branches"], name))
    print(f"{'folder':<12}{'branches':>18}{'lines':>18}")
    for top, (cb, nb, cl, nl) in sorted(per_dir.items()):
        print(f"{top + '/':<12}{cb:>8}/{nb:<6}{100 * cb / max(nb, 1):5.1f}%"
              f"{cl:>8}/{nl:<6}{100 * cl / max(nl, 1):5.1f}%")
    worst = sorted(missing_in_core, reverse=True)[:args.worst]
    print("core/ files with the most uncovered branches:",
          ", ".join(f"{name.split(PACKAGE + '/', 1)[-1]} ({m})" for m, name in worst if m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
