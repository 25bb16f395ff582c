"""Line breaks inside a text output line (core/ingest/route.py): with the quarantine policy such a line goes to
quarantine with its reason and the others are written; with the escape policy it is written on one line, and so is
every line holding a backslash (a reader unescapes every backslash). Filtered and bad messages are left alone."""
from __future__ import annotations

from pseidon_dagster.core.ingest.route import Router
from pseidon_dagster.core.partitioning import HOUR_MS

T = 493_000 * HOUR_MS
REASON = ("line break: the output line holds a line break (\\n or \\r) that would split it into several records "
          "(see :writer :line-breaks)")


def route(lines, policy, ts=None, bad=None):
    out, sizes, bad = list(lines), [len(x) for x in lines], dict(bad or {})
    hours = Router(0, 10 ** 15, text=True, line_breaks=policy).route(ts or [T] * len(lines), out, sizes, bad)
    return hours, out, sizes, bad


def test_clean_lines_pass_whatever_the_policy():
    lines = [b"a\n", b"b,c\n"]
    for policy in ("quarantine", "escape"):
        assert route(lines, policy) == ([493_000, 493_000], lines, [2, 4], {})


def test_the_quarantine_policy_rejects_lines_with_a_line_feed_or_a_carriage_return():
    lines = [b"ok\n", b"two\nlines\n", b"ok\\too\n", b"cr\rhere\n", b"ok\n"]
    hours, out, sizes, bad = route(lines, "quarantine")
    assert hours == [493_000, None, 493_000, None, 493_000]
    assert bad == {1: REASON, 3: REASON}
    assert out == lines and sizes == [len(x) for x in lines]  # the lines themselves are not rewritten


def test_a_carriage_return_alone_is_rejected_too():
    hours, _, _, bad = route([b"a\rb\n", b"c\n"], "quarantine")
    assert hours == [None, 493_000] and bad == {0: REASON}


def test_the_escape_policy_writes_one_line_per_message():
    lines = [b"plain\n", b"two\nlines\n", b"back\\slash\n", b"cr\rhere\n"]
    hours, out, sizes, bad = route(lines, "escape")
    assert hours == [493_000] * 4 and bad == {}
    assert out == [b"plain\n", b"two\\nlines\n", b"back\\\\slash\n", b"cr\\rhere\n"]
    assert sizes == [len(x) for x in out]


def test_with_the_escape_policy_a_backslash_alone_is_escaped():
    hours, out, sizes, bad = route([b"a\\b\n", b"c\n"], "escape")
    assert out == [b"a\\\\b\n", b"c\n"] and sizes == [5, 2] and bad == {}


def test_filtered_and_bad_messages_are_skipped_and_later_lines_still_checked():
    lines = [None, b"x\ny\n", b"bad\nline\n", b"p\nq\n"]
    hours, out, sizes, bad = route([b"" if x is None else x for x in lines], "quarantine", ts=[None, T, T, T],
                                   bad={2: "bad timestamp"})
    assert hours == [None, None, None, None]
    assert bad == {1: REASON, 2: "bad timestamp", 3: REASON}
    hours, out, _, bad = route([b"", b"x\ny\n", b"bad\nline\n", b"p\nq\n"], "escape", ts=[None, T, T, T],
                               bad={2: "bad timestamp"})
    assert out == [b"", b"x\\ny\n", b"bad\nline\n", b"p\\nq\n"] and bad == {2: "bad timestamp"}


def test_messages_outside_the_window_are_rejected_before_their_line_breaks():
    router = Router(T, T + 10, text=True)
    out, sizes, bad = [b"a\nb\n", b"c\n"], [4, 2], {}
    assert router.route([T + 11, T], out, sizes, bad) == [None, 493_000]
    assert bad == {0: f"timestamp {T + 11} outside the accepted window [{T}, {T + 10}] (see :writer :allow-all-ts)"}


def test_rows_are_not_lines():
    router = Router(0, 10 ** 15, text=False)
    bad: dict[int, str] = {}
    assert router.route([T], [(T, "a\nb")], [3], bad) == [493_000] and bad == {}
