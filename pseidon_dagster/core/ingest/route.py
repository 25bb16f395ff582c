"""Route decoded messages to their event hour (UTC), and send to quarantine what must not land:
- an event time outside the plan's accepted window (:writer :allow-all-ts / :ts-window-back-ms / -ahead-ms);
- for text outputs, a line that holds a line break (\\n or \\r) before its end, which would become several records
  in the file. With `:writer {:line-breaks "escape"}` every line is written with `\\` escaped as `\\\\`, LF as `\\n`
  and CR as `\\r` instead (a Hive table with ESCAPED BY '\\\\' and serialization.escape.crlf=true reads them back;
  `hive create-table` declares both for such logs).
"""
from __future__ import annotations

from ..partitioning import HOUR_MS

QUARANTINE, ESCAPE = "quarantine", "escape"
LINE_BREAK_POLICIES = (QUARANTINE, ESCAPE)


def escape_line(line: bytes) -> bytes:
    body = line[:-1] if line.endswith(b"\n") else line
    return body.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r") + b"\n"


class Router:
    def __init__(self, lo_ms: int, hi_ms: int, text: bool, line_breaks: str = QUARANTINE):
        self.lo_ms = lo_ms
        self.hi_ms = hi_ms
        self.text = text
        self.escape = line_breaks == ESCAPE

    def route(self, ts: list, out: list, sizes: list[int], bad: dict[int, str]) -> list:
        """Event hour per message (None for filtered and bad ones). Adds the window and line-break rejects to BAD;
        with the escape policy, rewrites OUT/SIZES of lines that held line breaks."""
        lo, hi = self.lo_ms, self.hi_ms
        hours = [None if t is None else t // HOUR_MS for t in ts]
        for i in bad:
            hours[i] = None
        for i, t in enumerate(ts):
            if hours[i] is not None and (t < lo or t > hi):
                bad[i] = f"timestamp {t} outside the accepted window [{lo}, {hi}] (see :writer :allow-all-ts)"
                hours[i] = None
        if self.text:
            self._line_breaks(out, sizes, hours, bad)
        return hours

    def _line_breaks(self, out: list, sizes: list[int], hours: list, bad: dict[int, str]) -> None:
        lines = [o for o, h in zip(out, hours) if h is not None]
        joined = b"".join(lines)
        if joined.count(b"\n") == len(lines) and b"\r" not in joined and not (self.escape and b"\\" in joined):
            return  # the common case: one line break per line, at its end (and nothing to escape)
        for i, (o, h) in enumerate(zip(out, hours)):
            if h is None:
                continue
            clean = o.count(b"\n") == 1 and b"\r" not in o
            if self.escape:
                if not clean or b"\\" in o:  # escaping is all or nothing: a reader unescapes every backslash
                    out[i] = escape_line(o)
                    sizes[i] = len(out[i])
            elif not clean:
                bad[i] = ("line break: the output line holds a line break (\\n or \\r) that would split it into "
                          "several records (see :writer :line-breaks)")
                hours[i] = None
