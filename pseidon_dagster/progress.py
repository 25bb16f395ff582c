"""Progress of long CLI work on stderr: a line redrawn in place on a terminal, a plain line every few seconds
otherwise. The JSON summary stays the last line of stdout."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, stream=None, every_s: float = 5.0):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = 0.2 if self.tty else every_s
        self.t0 = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s and done < total:
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-6)
        rate = done / elapsed
        eta = f", ETA {max(total - done, 0) / rate:.0f}s" if rate > 0 and total > done else ""
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        line = f"{self.label}: {what} {done:,}/{total:,}{pct}, {rate:,.0f}/s{eta}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
