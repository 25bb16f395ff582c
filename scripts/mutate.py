"""The mutation run (`make mutate`): mutmut over the ingest stages, the offsets, the file names and the in-run checks
([tool.mutmut] in pyproject.toml), then its numbers and the surviving mutants.

One tansu broker is started for the whole run (PSEIDON_TEST_KAFKA), so that the tests of each mutant do not start
their own; MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379) must be running, as for `make test`. mutmut's output
goes to var/mutate/mutmut.log; the summary is printed and written to var/mutate/summary.json, and every survivor's
diff to var/mutate/survivors.txt. Survivors not listed in docs/mutation-survivors.md are named at the end.

    python scripts/mutate.py [--max-children N]     # the run, from scratch
    python scripts/mutate.py --survivors               # after adding tests: rerun only the last run's survivors
    python scripts/mutate.py --resume                  # an interrupted run: the mutants it did not get to
    python scripts/mutate.py --summary-only            # the last run's numbers again
"""
from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "mutate"
DOC = ROOT / "docs" / "mutation-survivors.md"
MUTMUT = [str(Path(sys.executable).parent / "mutmut")]

# The mutants run: every function of the ingest stages (plan, read, decode, route, segment, publish, run), the offsets
# and partitioning, and of write.py the pieces of its own (row groups, quarantine records, the workers' totals); of
# checks.py the pure functions of the in-run checks (the others read the lake or Dagster's records through a Dagster
# context). Left out: write.py's loop that wires the stages to Kafka and its worker processes (write_plan,
# write_ranges, _in_workers, _worker): ~450 mutants that each need an end-to-end run, over an hour more on 2 CPUs.
SCOPE = [
    *(f"pseidon_dagster.core.ingest.{m}.*" for m in ("plan", "read", "decode", "route", "segment", "sink", "vector",
                                                     "run")),
    "pseidon_dagster.core.ingest.write.x_row_group_bytes__mutmut_*",
    "pseidon_dagster.core.ingest.write.x_quarantine_line__mutmut_*",
    "pseidon_dagster.core.ingest.write.x\u01c1Written\u01c1*",
    "pseidon_dagster.core.offsets.*",
    "pseidon_dagster.core.partitioning.*",
    *(f"pseidon_dagster.defs.ingest.checks.x_{f}__mutmut_*"
      for f in ("segments", "chain", "_fmt", "run_continuity", "run_record_counts")),
]
DETECTED = ("killed", "timeout", "caught by type check", "segfault")  # mutmut's statuses of a mutant that did not pass


def in_scope(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, g) for g in SCOPE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tansu() -> tuple[subprocess.Popen, str]:
    from pseidon_dagster.devstack.services import tansu_binary, wait_port

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(OUT / "tansu.log", "wb")
    proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                            stdout=log, stderr=subprocess.STDOUT)
    if not wait_port(port, 20):
        proc.kill()
        sys.exit(f"tansu did not start: see {OUT / 'tansu.log'}")
    return proc, f"127.0.0.1:{port}"


def results() -> dict[str, tuple[str, str]]:
    """mutant -> (status, source file) from mutmut's .meta files, in scope only."""
    from mutmut.stats import status_by_exit_code  # mutmut's own table (installed by the `mutate` extra)

    out = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        source = str(meta.relative_to(ROOT / "mutants"))[:-len(".meta")]
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if in_scope(key):
                out[key] = (status_by_exit_code[code], source)
    return out


def summary(found: dict[str, tuple[str, str]], seconds: float) -> dict:
    by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for status, source in found.values():
        by_file[source][status] += 1
    total = collections.Counter(status for status, _ in found.values())
    n = sum(total.values())
    return {"mutants": n, "killed": total["killed"], "survived": total["survived"], "timeout": total["timeout"],
            "no_tests": total["no tests"], "other": n - total["killed"] - total["survived"] - total["timeout"]
            - total["no tests"], "killed_pct": round(100 * total["killed"] / n, 1) if n else 0.0,
            "killed_or_timeout_pct": round(100 * (total["killed"] + total["timeout"]) / n, 1) if n else 0.0,
            "minutes": round(seconds / 60, 1), "by_file": {f: dict(c) for f, c in sorted(by_file.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--survivors", action="store_true",
                    help="rerun only the mutants the last run did not kill (its results are kept)")
    ap.add_argument("--resume", action="store_true", help="run only the mutants an interrupted run did not get to")
    ap.add_argument("--summary-only", action="store_true", help="print the numbers of the last run, run nothing")
    args = ap.parse_args()
    os.chdir(ROOT)
    OUT.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    if not args.summary_only:
        names = SCOPE
        if args.survivors or args.resume:
            skip = DETECTED if args.survivors else (*DETECTED, "survived", "no tests")
            names = sorted(k for k, (status, _) in results().items() if status not in skip)
            if not names:
                print("no mutants to run", file=sys.stderr)
                return 0
        else:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        log_path = OUT / ("mutmut-survivors.log" if args.survivors else "mutmut-resume.log" if args.resume
                          else "mutmut.log")
        tansu, bootstrap = start_tansu()
        t0 = time.monotonic()
        try:
            with open(log_path, "wb") as log:
                # one broker for all; the property tests of the vector path with fewer examples (60 by default)
                env = {"PSEIDON_PROPERTY_EXAMPLES": "20", **os.environ, "PSEIDON_TEST_KAFKA": bootstrap}
                rc = subprocess.call([*MUTMUT, "run", "--max-children", str(args.max_children), *names],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            tansu.terminate()
            tansu.wait(10)
        seconds = time.monotonic() - t0
        if (args.survivors or args.resume) and (OUT / "summary.json").exists():  # the earlier runs' time too
            seconds += json.loads((OUT / "summary.json").read_text())["minutes"] * 60
        if rc != 0:
            print(f"mutmut run exited {rc}; its output: {log_path}", file=sys.stderr)
            return rc
    elif (OUT / "summary.json").exists():
        seconds = json.loads((OUT / "summary.json").read_text())["minutes"] * 60
    found = results()
    if not found:
        print("no mutants found: run without --summary-only first", file=sys.stderr)
        return 1
    numbers = summary(found, seconds)
    (OUT / "summary.json").write_text(json.dumps(numbers, indent=1) + "\n")
    survivors = sorted(k for k, (status, _) in found.items() if status not in DETECTED)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    with open(OUT / "survivors.txt", "w") as f:
        for key in survivors:
            f.write(f"# {key}: {found[key][0]}\n{get_diff_for_mutant(key, path=found[key][1])}\n\n")
    print(f"{'file':48} {'mutants':>7} {'killed':>7} {'survived':>8} {'timeout':>7} {'no tests':>8}")
    for source, c in numbers["by_file"].items():
        print(f"{source:48} {sum(c.values()):7} {c.get('killed', 0):7} {c.get('survived', 0):8} "
              f"{c.get('timeout', 0):7} {c.get('no tests', 0):8}")
    print(f"{numbers['mutants']} mutants: {numbers['killed']} killed ({numbers['killed_pct']} %), "
          f"{numbers['survived']} survived, {numbers['timeout']} timed out, {numbers['no_tests']} without a test, "
          f"{numbers['other']} other; {numbers['minutes']} min")
    documented = DOC.read_text() if DOC.exists() else ""
    # the doc names a method's mutant Class.method__mutmut_N (mutmut's own names separate them with U+01C1)
    shown = {k: k.rsplit(".", 1)[-1].replace("\u01c1", ".") for k in survivors}
    undocumented = [k for k in survivors if f"`{shown[k]}`" not in documented]
    print(f"survivors and their diffs: {OUT / 'survivors.txt'}")
    if undocumented:
        print(f"{len(undocumented)} not killed and not in {DOC.relative_to(ROOT)}:")
        for key in undocumented:
            print(f"  {key}: {found[key][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
