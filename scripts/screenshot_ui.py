#!/usr/bin/env python3
"""Screenshots of the Dagster UI on the demo stack, for the README: the asset lineage and one log's partitions.

    .venv/bin/python scripts/screenshot_ui.py            # runs `pseidon-dagster demo` first if var/ has no runs
    .venv/bin/python scripts/screenshot_ui.py --log views --out docs/images

Starts `dagster dev` (DAGSTER_HOME=var/dagster_home, PSEIDON_CONF=conf/pseidon.edn, 127.0.0.1 on a free port),
waits for the code location, takes the pictures with headless Chromium (apt-get install chromium), and stops
`dagster dev` again. Nothing but 127.0.0.1 is contacted: Chromium runs with its background networking off.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:
    # A parent started without job control may ignore SIGINT/SIGTERM; `dagster dev` must be stoppable.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_ready(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dagster dev exited early; see its log")
        try:
            entries = graphql(port, query)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    raise RuntimeError(f"dagster dev did not load the code location within {seconds:.0f}s")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium found: apt-get update && apt-get install -y chromium")


def shoot(url: str, out: Path, width: int = 1600, height: int = 1000, budget_ms: int = 20000) -> None:
    with tempfile.TemporaryDirectory(prefix="pseidon-chromium-") as profile:
        args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
                "--disable-features=OptimizationHints,MediaRouter,Translate",
                f"--user-data-dir={profile}", f"--window-size={width},{height}",
                f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed for {url}: {proc.stderr[-2000:]}")
    print(f"  {out}  <- {url}")


def SHOTS(base: str, log: str):
    from urllib.parse import quote

    key = quote(f"{latest_hour(log)}|{log}")
    return [
        ("lineage.png", f"{base}/assets/lake_files?view=lineage", (1400, 640)),
        ("partitions.png", f"{base}/assets/lake_files?view=partitions&partition={key}", (1600, 1250)),
    ]


def latest_hour(log: str) -> str:
    """The newest event hour of LOG with data, from the demo's instance."""
    home = REPO / "var" / "dagster_home"
    code = ("import dagster as dg;i=dg.DagsterInstance.get();"
            "print(max(k.split('|')[0] for k in i.get_materialized_partitions(dg.AssetKey('lake_files'))"
            f" if k.endswith('|{log}')))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def has_runs(home: Path) -> bool:
    return (home / "history" / "runs.db").exists()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="conf/pseidon.edn")
    ap.add_argument("--log", default="clicks", help="the log whose partitions are shown")
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--demo", choices=["auto", "always", "never"], default="auto",
                    help="run `pseidon-dagster demo` first (auto: when var/dagster_home has no runs yet)")
    args = ap.parse_args()
    os.chdir(REPO)
    home = REPO / "var" / "dagster_home"
    if args.demo == "always" or (args.demo == "auto" and not has_runs(home)):
        subprocess.run([str(BIN / "pseidon-dagster"), "demo", "--config", args.config], check=True)
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PSEIDON_CONF": str(REPO / args.config)}
    log_path = REPO / "var" / "screenshot-dagster-dev.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p",
                                 str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_signals)
    try:
        print(f"dagster dev on http://127.0.0.1:{port} (log: {log_path.relative_to(REPO)})")
        wait_ready(port, proc)
        base = f"http://127.0.0.1:{port}"
        for name, url, size in SHOTS(base, args.log):
            shoot(url, out / name, *size)
    finally:
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (run workers, code servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
