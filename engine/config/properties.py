"""Java `.properties` text as java.util.Properties reads it: comments, `=`/`:`/whitespace
separators, line continuations and escapes; the last occurrence of a key wins."""

from __future__ import annotations

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str):
    """Joins continuation lines (an odd number of trailing backslashes) as java.util.Properties does."""
    pending = None
    for physical in text.splitlines():
        line = physical.lstrip(" \t\f") if pending is not None else physical
        if pending is None:
            stripped = line.lstrip(" \t\f")
            if not stripped or stripped[0] in "#!":
                continue
            line = stripped
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (pending or "") + line[:-1]
            continue
        yield (pending or "") + line
        pending = None
    if pending is not None:
        yield pending


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and i + 6 <= len(text):
            try:
                out.append(chr(int(text[i + 2 : i + 6], 16)))
            except ValueError as error:
                raise ValueError(f"malformed \\uxxxx escape in {text!r}") from error
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parses Java .properties text; the last occurrence of a key wins, as in Java."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i, value_start = 0, len(line)
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=:":
                value_start = i + 1
                break
            if ch in " \t\f":
                # whitespace ends the key; one '=' or ':' may still follow it
                j = i
                while j < len(line) and line[j] in " \t\f":
                    j += 1
                value_start = j + 1 if j < len(line) and line[j] in "=:" else j
                break
            i += 1
        key = line[: min(i, len(line))]
        result[_unescape(key)] = _unescape(line[value_start:].lstrip(" \t\f"))
    return result
