"""Named pauses for crash drills: PSEIDON_FAILPOINTS="after-publish=0.5,after-register=0.5" makes a run sleep at
those points, so a test that SIGKILLs runs at random moments also hits the narrow windows between publishing,
registering and committing. Unset (production), a failpoint is a dictionary lookup."""
from __future__ import annotations

import os
import time

POINTS = ("after-plan", "after-publish", "after-register", "before-commit", "swap-hive-new", "swap-exchanged")


def _parse(text: str) -> dict[str, float]:
    out = {}
    for item in text.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() in POINTS:
            out[name.strip()] = float(seconds or 0)
    return out


_PAUSES = _parse(os.environ.get("PSEIDON_FAILPOINTS", ""))


def pause(name: str) -> None:
    seconds = _PAUSES.get(name)
    if seconds:
        time.sleep(seconds)
