"""`pseidon-dagster status`: one row per log of the page, and the table it prints."""
from __future__ import annotations

from .store import iso


def status_rows(page: dict, dagster_runs: dict[str, dict] | None = None) -> list[dict]:
    """One row per log of the page: enabled, group, lag, last run and its result, last error, the last hour,
    freshness. DAGSTER_RUNS (log -> {status, run_id, end}) adds what Dagster's instance knows, when given."""
    rows = []
    for name, e in sorted(page["logs"].items()):
        last, err = e["last-run"], e["last-error"]
        run = None
        if last or err:
            failed = err is not None and (last is None or err["at-ms"] > last["at-ms"])
            src = err if failed else last
            run = {"result": "failure" if failed else "success", "at": iso(src["at-ms"]), "at-ms": src["at-ms"],
                   "run": src.get("run"), "messages": None if failed else last["messages"],
                   "step": err.get("step") if failed else None}
        row = {"log": name, "enabled": e["enabled"], "group": e["group"], "lag": e["lag"], "lag-total": e["lag-total"],
               "lag-error": e.get("lag-error"), "last-run": run,
               "last-error": None if err is None else {**err, "at": iso(err["at-ms"])},
               "last-hour": e["last-hour"], "freshness": e["freshness"]}
        if dagster_runs and name in dagster_runs:
            row["dagster"] = dagster_runs[name]
        rows.append(row)
    return rows


def _ago(ms: int | None, at: int) -> str:
    if ms is None:
        return "-"
    s = max(0, (at - ms) // 1000)
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def status_table(rows: list[dict], at_ms: int) -> str:
    head = ["LOG", "ENABLED", "GROUP", "LAG", "LAG/PARTITION", "LAST RUN", "RESULT", "FILES/1H", "BYTES/1H",
            "FRESHNESS", "LAST ERROR"]
    out = []
    for r in rows:
        run = r["last-run"] or {}
        if r.get("dagster"):
            run = {**run, "result": r["dagster"]["status"].lower()}
        f = r["freshness"]
        fresh = (f["state"] if f["age-minutes"] is None
                 else f"{f['state']} {f['age-minutes']:.0f}m/{f['limit-minutes']}m")
        err = r["last-error"]
        out.append([
            r["log"], "yes" if r["enabled"] else "no", r["group"] or "-",
            "-" if r["lag-total"] is None else str(r["lag-total"]),
            " ".join(f"p{p}:{v}" for p, v in r["lag"].items()) or ("?" if r.get("lag-error") else "-"),
            _ago(run.get("at-ms"), at_ms), run.get("result") or "-",
            str(r["last-hour"]["files"]), _size(r["last-hour"]["bytes"]), fresh,
            "-" if not err else f"{err.get('step') or ''} {_ago(err['at-ms'], at_ms)}: {err['error']}"[:100],
        ])
    widths = [max(len(h), *(len(x[i]) for x in out)) if out else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in out]
    return "\n".join(lines)
