"""The key reference of docs/configuration.md, generated from the key table (engine.config.keys).

`make config-docs` (python -m engine.config.reference docs/configuration.md) rewrites the part of the
page between the markers; tests/unit/test_config_keys.py fails when the committed page differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.config.keys import KEYS, Key

BEGIN = "<!-- generated from engine/config/keys.py by `make config-docs`; edit the table there -->"
END = "<!-- end of the generated reference -->"
WHERE = {
    "top": "top level",
    "cluster": "`<c>.`",
    "worker": "`<t>.` or top level (a Connect worker setting of the flows into `<t>`)",
    "flow": "`<s>-><t>.` or top level",
    "client": "top level or `<c>.`",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _name(key: Key) -> str:
    if key.kind == "family":
        return f"`{key.name}*`"
    return f"`{key.name}`"


def _default(key: Key) -> str:
    if key.shown:
        return key.shown
    return f"`{key.default}`" if key.default else "(none)"


def _mm2(key: Key) -> str:
    if key.mm2 is None:
        return "(the engine's own)"
    if key.mm2 == key.default or (key.default is None and not key.mm2) or key.shown == f"`{key.mm2}`":
        return "same"
    return f"`{key.mm2}`" if key.mm2 else "(none)"


def reference() -> str:
    """The generated part of the page, markers included."""
    lines = [BEGIN, "", "| Key | Where | Default | MM2's default | Notes |", "|---|---|---|---|---|"]
    for key in KEYS:
        if key.used:
            lines.append("| " + " | ".join(_cell(c) for c in (_name(key), WHERE[key.scope], _default(key), _mm2(key),
                                                                 key.doc)) + " |")
    unused = ", ".join(f"`{k.name}{'*' if k.name.endswith('.') else ''}`" for k in KEYS if not k.used)
    if unused:
        lines += ["", "Accepted and not used, named in a remark at start (a custom policy's settings, Connect's topic "
                      "creation groups, and settings of MM2's Connect workers and driver, which the engine does not "
                      f"run; each name also stands for the keys that begin with it): {unused}."]
    lines += ["", END]
    return "\n".join(lines)


def rewritten(page: str) -> str:
    """The page with its generated part replaced by the table's."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page lacks the markers {BEGIN!r} … {END!r}")
    return head + reference() + tail


if __name__ == "__main__":
    page = Path(sys.argv[1])
    page.write_text(rewritten(page.read_text(encoding="utf-8")), encoding="utf-8")
