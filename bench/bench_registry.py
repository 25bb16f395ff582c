"""Cost of the schema registry client under `avro-txt`: messages decoded through the product's parser
(build_parser(...).line) against the local stand-in registry of
tests/unit/core/formats/test_formats_avro (an http.server on 127.0.0.1).

    .venv/bin/python bench/bench_registry.py [MESSAGES] [--json FILE]

Scenarios (each on a fresh registry, so a fresh client; best of REPEAT wall times):
  warm         MESSAGES messages of one schema id already fetched: the per-message cost alone
  one-id       MESSAGES messages of one schema id: the client is made and fetches once, then the per-id cache
  1000-ids     MESSAGES messages over 1,000 schema ids: 1,000 fetches (HTTP/1.0: a connection per fetch)
  1000-ids-ka  the same with a keep-alive (HTTP/1.1) registry, as a real one is
  unknown-ids  MESSAGES messages over 100 ids the registry does not know: 100 fetches, then the negative cache
  fetch        1,000 fetches of distinct ids through the client alone (keep-alive), per fetch
and, in a fresh interpreter, the import of the client and the first fetch (cold start of a run worker).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pseidon_dagster.core.formats import MessageError, build_parser  # noqa: E402
from pseidon_dagster.core.formats import registry as registry_mod  # noqa: E402
from tests.unit.core.formats.test_formats_avro import LINE_SCHEMA, FakeRegistry, encode  # noqa: E402

REPEAT = 5
T = 1_700_000_000_000


def _registry(ids, keep_alive: bool = False) -> FakeRegistry:
    r = FakeRegistry({i: LINE_SCHEMA for i in ids})
    if keep_alive:
        r.server.RequestHandlerClass.protocol_version = "HTTP/1.1"
        # http.server writes the headers and the body in two sends: without TCP_NODELAY the body waits for the
        # client's delayed ACK (~40 ms per response), which measures the stand-in, not the client
        r.server.RequestHandlerClass.disable_nagle_algorithm = True
    return r


def run(messages: list[bytes], ids, keep_alive: bool = False, warm: bool = False) -> tuple[float, int]:
    """Best wall time of decoding MESSAGES through a fresh parser (fresh registry: fresh client), and its requests.
    WARM: the first message is decoded before the clock starts."""
    best, hits = float("inf"), 0
    for _ in range(REPEAT):
        r = _registry(ids, keep_alive)
        try:
            p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url)
            if warm:
                p.line(messages[0])
            t0 = time.perf_counter()
            for m in messages:
                try:
                    p.line(m)
                except MessageError:
                    pass
            best = min(best, time.perf_counter() - t0)
            hits = r.hits
        finally:
            r.close()
    return best, hits


def fetch(n: int = 1000) -> float:
    """Seconds per fetch of a distinct id through the client alone (keep-alive registry), best of REPEAT."""
    best = float("inf")
    for _ in range(REPEAT):
        r = _registry(range(n), keep_alive=True)
        try:
            c = registry_mod.client_for(r.url)
            t0 = time.perf_counter()
            for i in range(n):
                c.get(i)
            best = min(best, (time.perf_counter() - t0) / n)
        finally:
            r.close()
    return best


COLD = """
import sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from pseidon_dagster.core.formats import build_parser
from tests.unit.core.formats.test_formats_avro import LINE_SCHEMA, FakeRegistry, encode
t1 = time.perf_counter()
r = FakeRegistry({{1: LINE_SCHEMA}})
p = build_parser("avro-txt:ts=0;msg=1", schema_registry_url=r.url)
t2 = time.perf_counter()
p.line(encode(LINE_SCHEMA, {{"timestamp": 1, "line": "x"}}, 1))
t3 = time.perf_counter()
print(t1 - t0, t3 - t2)
"""


def cold() -> tuple[float, float]:
    """(import of the formats package, first line() including the first fetch) in a fresh interpreter, median."""
    out = []
    for _ in range(REPEAT):
        res = subprocess.run([sys.executable, "-c", COLD.format(root=str(ROOT))], capture_output=True, text=True,
                             check=True, env={"NO_PROXY": "127.0.0.1,localhost", "PATH": "/usr/bin:/bin"})
        out.append(tuple(map(float, res.stdout.split())))
    out.sort()
    return out[len(out) // 2]


def main(n: int = 100_000, json_out: str | None = None) -> dict:
    one = [encode(LINE_SCHEMA, {"timestamp": T + i, "line": f"line {i}"}, 1) for i in range(n)]
    many = [encode(LINE_SCHEMA, {"timestamp": T + i, "line": f"line {i}"}, i % 1000) for i in range(n)]
    unknown = [encode(LINE_SCHEMA, {"timestamp": T + i, "line": f"line {i}"}, 10_000 + i % 100) for i in range(n)]
    result = {"client": registry_mod.__doc__.strip().splitlines()[0][:100], "messages": n}
    for name, msgs, ids, ka, warm in (
            ("warm", one, [1], False, True), ("one-id", one, [1], False, False),
            ("1000-ids", many, range(1000), False, False), ("1000-ids-ka", many, range(1000), True, False),
            ("unknown-ids", unknown, [1], False, False)):
        secs, hits = run(msgs, ids, ka, warm)
        result[name] = {"s": round(secs, 3), "msg_per_s": round(n / secs), "requests": hits}
        print(f"{name:12} {secs:7.3f} s  {n / secs:9,.0f} msg/s  {secs / n * 1e6:6.2f} us/msg  {hits:5} requests",
              flush=True)
    per = fetch()
    result["fetch_ms"] = round(per * 1000, 3)
    print(f"{'fetch':12} {per * 1000:7.3f} ms per schema id (keep-alive)", flush=True)
    imp, first = cold()
    result["cold_import_s"], result["cold_first_line_s"] = round(imp, 3), round(first, 3)
    print(f"{'cold':12} import {imp:.3f} s, first line() with its fetch {first:.3f} s", flush=True)
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--json" in args:
        i = args.index("--json")
        out = args[i + 1]
        del args[i:i + 2]
    main(int(args[0]) if args else 100_000, out)
