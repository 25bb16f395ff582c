"""EDN text (pseidon.edn) to plain Python, with syntax errors at a line and column.

edn_format parses. It reports most syntax errors without a position ("EOF Reached", "Even number of terms required
for map"), so a small scanner of brackets, strings, characters, comments and `#_` discards runs first and finds those
itself: an unclosed or mismatched bracket, an unterminated string, a map with a key and no value.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import edn_format

logging.getLogger("edn_format").setLevel(logging.WARNING)  # its lexer logs every grammar rule at INFO

_CLOSE = {"(": ")", "[": "]", "{": "}", "#{": "}"}
_DELIMITERS = set(" \t\r\n,;\"()[]{}")


class EDNError(ValueError):
    """Not valid EDN; the message says where (line and column, both from 1) when it can."""


def loads(text: str) -> Any:
    """TEXT parsed, with keywords as their names and EDN maps/vectors/sets as dict/list."""
    problem = _scan(text)
    if problem:
        raise EDNError(problem)
    try:
        return plain(edn_format.loads(text))
    except Exception as e:  # edn_format raises several exception types
        raise EDNError(_located(text, e)) from e


def plain(value: Any) -> Any:
    """EDN values to plain Python: keywords to their name, immutable maps/vectors to dict/list."""
    if isinstance(value, edn_format.Keyword):
        return value.name
    if isinstance(value, dict) or hasattr(value, "items"):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)) or (
            hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return [plain(v) for v in value]
    return value


def position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    return f"line {line}, column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def _located(text: str, e: Exception) -> str:
    token = e.args[0] if e.args else None
    pos = getattr(token, "lexpos", None)
    if pos is None:
        m = re.search(r"lexpos (\d+)", str(e))
        pos = int(m.group(1)) if m else None
    if pos is None:
        return str(e)
    shown = getattr(token, "value", None) or str(e)
    return f"unexpected {shown!r} at {position(text, pos)}"


def _scan(text: str) -> str | None:
    """The first bracket, string or map problem in TEXT, with its position; None when there is none."""
    stack: list[list] = [["", 0, 0, 0]]  # frames: [opener, index, forms, forms to discard]

    def form_done() -> None:
        frame = stack[-1]
        if frame[3]:
            frame[3] -= 1
        else:
            frame[2] += 1

    i, n = 0, len(text)
    while i < n:
        c, nxt = text[i], text[i + 1:i + 2]
        if c in " \t\r\n,":
            i += 1
        elif c == ";":
            i = n if text.find("\n", i) < 0 else text.find("\n", i)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return f"a string opened at {position(text, i)} is never closed"
            i = j + 1
            form_done()
        elif c == "#" and nxt == "_":
            stack[-1][3] += 1
            i += 2
        elif c in "([{" or (c == "#" and nxt == "{"):
            opener = "#{" if c == "#" else c
            stack.append([opener, i, 0, 0])
            i += len(opener)
        elif c in ")]}":
            if len(stack) == 1:
                return f"`{c}` at {position(text, i)} closes nothing"
            opener, start, forms, _ = stack.pop()
            if _CLOSE[opener] != c:
                return f"`{c}` at {position(text, i)} does not close the `{opener}` opened at {position(text, start)}"
            if opener == "{" and forms % 2:
                return f"the map opened at {position(text, start)} has a key without a value"
            i += 1
            form_done()
        else:  # an atom, a character literal (\x, \newline) or a #tag (which prefixes the next form)
            j = i + (2 if c == "\\" else 1)
            while j < n and text[j] not in _DELIMITERS:
                j += 1
            if not (c == "#" and nxt.isalpha()):
                form_done()
            i = j
    if len(stack) > 1:
        opener, start = stack[-1][:2]
        return f"the `{opener}` opened at {position(text, start)} is never closed"
    return None
