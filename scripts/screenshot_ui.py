#!/usr/bin/env python3
"""Screenshots of the Dagster UI on the demo stack, for the README: the asset lineage, one log's partitions, and a
backfill of a range of that log's hours (the Materialize dialog with the range chosen, then the backfill's page).

    .venv/bin/python scripts/screenshot_ui.py            # runs `pseidon-dagster demo` first if var/ has no runs
    .venv/bin/python scripts/screenshot_ui.py --log views --out docs/images
    .venv/bin/python scripts/screenshot_ui.py --shots backfill

Starts `dagster dev` (DAGSTER_HOME=var/dagster_home, PSEIDON_CONF=conf/pseidon.edn, 127.0.0.1 on a free port),
waits for the code location, takes the pictures with headless Chromium (apt-get install chromium), and stops
`dagster dev` again. Nothing but 127.0.0.1 is contacted: Chromium runs with its background networking off.

The backfill pictures are taken by driving the UI as a user does, over the DevTools protocol on a pipe
(--remote-debugging-pipe: no port is opened): the partitions page of lake_files filtered to the 4 hours before the
log's newest hour with data, "Materialize...", the dialog with the range chosen (backfill-launch.png), "Launch
backfill", then, once `dagster dev`'s daemon has run it, the backfill's page (backfill-progress.png). The backfill
really runs: it rebuilds those 4 hours of the demo's log (byte-identical files; offsets do not move).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
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


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
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


# Chromium without anything that would reach beyond 127.0.0.1.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
                  "--disable-features=OptimizationHints,MediaRouter,Translate"]


def shoot(url: str, out: Path, width: int = 1600, height: int = 1000, budget_ms: int = 20000) -> None:
    with tempfile.TemporaryDirectory(prefix="pseidon-chromium-") as profile:
        args = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed for {url}: {proc.stderr[-2000:]}")
    print(f"  {out}  <- {url}")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: the protocol runs on
    the browser's file descriptors 3 and 4, NUL-separated JSON; no debugging port is opened). One page."""

    def __init__(self, width: int, height: int):
        self.profile = tempfile.TemporaryDirectory(prefix="pseidon-chromium-")
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def wire() -> None:  # in the child: the pipe ends as fds 3 (commands) and 4 (answers)
            a, b = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(to_browser)
        os.close(from_browser)
        self._ids = iter(range(1, 1 << 30))
        self._buf = b""
        self.session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.size(width, height)

    def send(self, method: str, **params) -> dict:
        i = next(self._ids)
        msg = {"id": i, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == i:  # events (no id) are not needed here
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def size(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def js(self, expression: str):
        out = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def wait(self, expression: str, what: str, seconds: float = 30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        raise RuntimeError(f"gave up waiting for {what} ({seconds:.0f}s); the page says: "
                           f"{self.js('document.body.innerText')[:1500]}")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def screenshot(self, out: Path) -> None:
        import base64

        time.sleep(0.5)  # let the last render and transitions settle
        out.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.profile.cleanup()


def button(label: str) -> str:
    """JS: the first enabled button whose text starts with LABEL (or null)."""
    return (f"[...document.querySelectorAll('button')].find(b => b.innerText.trim().startsWith({json.dumps(label)})"
            " && !b.disabled) || null")


BACKFILLS = "{ partitionBackfillsOrError(limit: 1) { ... on PartitionBackfills { results { id } } } }"
BACKFILL = """query ($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
  status assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts { assetKey { path }
  numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } } } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def newest_backfill(port: int) -> str | None:
    results = graphql(port, BACKFILLS)["data"]["partitionBackfillsOrError"]["results"]
    return results[0]["id"] if results else None


def backfill_shots(base: str, port: int, log: str, out: Path, hours: int = 4) -> None:
    """backfill-launch.png: lake_files' Materialize dialog with LOG x HOURS hours chosen, those before its newest
    hour with data (which partitions.png shows with the metadata of a tail run: the backfill leaves it alone);
    backfill-progress.png: the page of that backfill once the daemon has run it."""
    newest = dt.datetime.strptime(materialized_hours(log)[-1], "%Y-%m-%d-%H:%M")
    first, last = (f"{newest - dt.timedelta(hours=n):%Y-%m-%d-%H:%M}" for n in (hours, 1))
    # The dialog starts from the page's selection ({dimension}_range in the query string), as when a user filtered
    # the partitions page to the hours and the log before pressing Materialize.
    query = urllib.parse.urlencode({"view": "partitions", "hour_range": f"[{first}...{last}]", "log_range": log})
    browser = Browser(1400, 860)
    try:
        browser.goto(f"{base}/assets/lake_files?{query}")
        browser.wait(f"!!({button('Materialize')})", "the Materialize button")
        browser.js(f"({button('Materialize')}).click()")
        dialog = "document.querySelector('[role=dialog]')"
        chosen = f"{dialog}.innerText.includes('{hours} partitions')"
        browser.wait(f"{dialog} && {chosen} && !!({button('Launch backfill')})", f"the dialog with {hours} partitions")
        browser.screenshot(out / "backfill-launch.png")
        print(f"  {out / 'backfill-launch.png'}  <- Materialize on lake_files, {log} x [{first}...{last}]")

        before = newest_backfill(port)
        browser.js(f"({button('Launch backfill')}).click()")
        deadline = time.monotonic() + 30
        while (backfill := newest_backfill(port)) == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the backfill was not created")
            time.sleep(0.5)
        print(f"  backfill {backfill} launched; waiting for the daemon to run it (it looks every 30 s)")
        deadline = time.monotonic() + 240
        while True:
            status = graphql(port, BACKFILL, {"id": backfill})["data"]["partitionBackfillOrError"]
            if status["status"] in DONE:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"backfill {backfill} still {status['status']} after 240 s")
            time.sleep(2)
        if status["status"] != "COMPLETED_SUCCESS":
            raise RuntimeError(f"backfill {backfill} ended {status['status']}: {status}")
        browser.size(1600, 520)  # tall enough for the navigation, wide enough for the column titles
        browser.goto(f"{base}/runs/b/{backfill}")
        browser.wait("document.body.innerText.includes('100% completed')", "the completed backfill page")
        browser.screenshot(out / "backfill-progress.png")
        print(f"  {out / 'backfill-progress.png'}  <- {base}/runs/b/{backfill}")
    finally:
        browser.close()


def SHOTS(base: str, log: str):
    from urllib.parse import quote

    key = quote(f"{latest_hour(log)}|{log}")
    return [
        ("lineage.png", f"{base}/assets/lake_files?view=lineage", (1400, 640)),
        ("partitions.png", f"{base}/assets/lake_files?view=partitions&partition={key}", (1600, 1250)),
    ]


def latest_hour(log: str) -> str:
    """The newest event hour of LOG with data, from the demo's instance."""
    return materialized_hours(log)[-1]


def materialized_hours(log: str) -> list[str]:
    """The event hours of LOG with data (materialized lake_files partitions), oldest first."""
    home = REPO / "var" / "dagster_home"
    code = ("import dagster as dg;i=dg.DagsterInstance.get();"
            "print('\\n'.join(sorted(k.split('|')[0] for k in i.get_materialized_partitions(dg.AssetKey('lake_files'))"
            f" if k.endswith('|{log}'))))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def has_runs(home: Path) -> bool:
    return (home / "history" / "runs.db").exists()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="conf/pseidon.edn")
    ap.add_argument("--log", default="clicks", help="the log whose partitions are shown")
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--shots", default="lineage,partitions,backfill",
                    help="pictures to take: lineage, partitions, backfill (backfill-launch.png, backfill-progress.png)")
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
        wanted = set(args.shots.split(","))
        for name, url, size in SHOTS(base, args.log):
            if name.removesuffix(".png") in wanted:
                shoot(url, out / name, *size)
        if "backfill" in wanted:
            backfill_shots(base, port, args.log, out)
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
