"""Java regular expressions, as MM2's filters compile them (java.util.regex.Pattern), as Python `re`
patterns with the same matches.

`topics`, `groups`, their `.exclude` lists and `config.properties.exclude` are Java regexes. Most
are valid Python as written; these Java constructs are translated:

| Java | Python |
|---|---|
| `\\p{Lower}`, `\\p{Alpha}`, `\\p{Punct}`, ... (the 13 POSIX classes, US-ASCII) and `\\P{...}` | their ASCII sets |
| `\\Q...\\E` | the quoted text, escaped |
| `(?<name>...)`, `\\k<name>` | `(?P<name>...)`, `(?P=name)` |
| `(?i)`, `(?m)`, `(?s)` and `(?-i)` in the middle (they hold to the end of their group) | scoped `(?i:...)` groups, reopened after each `|` |
| `\\x{h...}`, `\\0ooo`, `\\cX`, `\\e`, surrogate pairs `\\uD83D\\uDE00` | the character |
| `\\h`, `\\H`, `\\v`, `\\V`, `\\R`, `\\z`, `\\Z` | their sets / end anchors |
| nested classes `[a-c[x-z]]` (a union) | one class |

`\\w`, `\\d`, `\\s`, `\\b` and case-insensitive matching are ASCII in Java unless a flag says
otherwise, so the result is compiled with `re.ASCII`. Constructs without a Python equivalent (Unicode
properties and scripts such as `\\p{L}` or `\\p{IsLatin}`, `java.lang.Character` classes, class
intersections `&&`, `\\G`, `\\X`, the flags `d`, `u`, `x` and `U`) are refused with the construct named.
Possessive quantifiers and atomic groups are Python (3.11) as they are. Java's `.` and `$` also treat
`\\r`, `\\u0085`, `\\u2028` and `\\u2029` as line ends, Python's only `\\n`; topic names cannot hold
them.
"""  # noqa: E501 (a Markdown table: its rows cannot wrap)

from __future__ import annotations

import re
import unicodedata

# Pattern's POSIX character classes (US-ASCII), as class contents
_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~", "Print": " -~", "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f", "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0b\\f\\r",
}
_HORIZONTAL = " \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"
_VERTICAL = "\\n\\x0b\\f\\r\\x85\\u2028\\u2029"
_LINE_END = "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85\\u2028\\u2029])"
# escapes that mean the same in both
_SAME = set("dDsSwWbBAtnrfa")
_FLAGS = {"i": "i", "m": "m", "s": "s"}
_UNSUPPORTED_FLAGS = {"d": "UNIX_LINES", "u": "UNICODE_CASE", "x": "COMMENTS", "U": "UNICODE_CHARACTER_CLASS"}
_QUANTIFIER = re.compile(r"\{\d+(,\d*)?\}")
_GROUP_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9]*")


class JavaRegexError(ValueError):
    """A Java construct with no Python equivalent, or one Java itself refuses; names the construct."""


def compile_java(pattern: str) -> re.Pattern[str]:
    """The Python pattern that matches what Java's Pattern.compile(pattern) matches."""
    try:
        return re.compile(translate(pattern), re.ASCII)
    except re.error as error:
        raise JavaRegexError(f"not a valid regular expression: {error}") from None


def translate(pattern: str) -> str:
    return _Translator(pattern).run()


class _Group:
    def __init__(self) -> None:
        self.flag_groups: list[str] = []  # scoped flag groups opened in this group, to close and reopen


class _Translator:
    def __init__(self, pattern: str):
        self.text = pattern
        self.i = 0
        self.out: list[str] = []
        self.groups = [_Group()]

    def run(self) -> str:
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char == "\\":
                self.out.append(self._escape(in_class=False))
            elif char == "[":
                self.out.append("[" + self._class() + "]")
            elif char == "(":
                self._open()
            elif char == ")":
                self._close_flags()
                if len(self.groups) > 1:
                    self.groups.pop()
                self.out.append(")")
                self.i += 1
            elif char == "|":
                group = self.groups[-1]
                self.out.append(")" * len(group.flag_groups) + "|" + "".join(f"(?{f}:" for f in group.flag_groups))
                self.i += 1
            elif char == "{":
                match = _QUANTIFIER.match(text, self.i)
                if match is None:
                    raise JavaRegexError(f"the {{ at character {self.i} starts no {{n}}, {{n,}} or {{n,m}} "
                                         "repetition (Java refuses it; write \\{ for the character)")
                self.out.append(match.group())
                self.i = match.end()
            else:
                self.out.append(char)
                self.i += 1
        self._close_flags()
        return "".join(self.out)

    def _close_flags(self) -> None:
        group = self.groups[-1]
        self.out.append(")" * len(group.flag_groups))
        group.flag_groups = []

    def _open(self) -> None:
        text, i = self.text, self.i
        if not text.startswith("(?", i):
            self.out.append("(")
            self.groups.append(_Group())
            self.i += 1
            return
        if text.startswith("(?<", i) and text[i + 3:i + 4] not in ("=", "!"):
            end = text.find(">", i + 3)
            name = text[i + 3:end] if end > 0 else ""
            if not _GROUP_NAME.fullmatch(name):
                raise JavaRegexError(f"the named group at character {i} needs a name of letters and digits "
                                     "starting with a letter, then >")
            self.out.append(f"(?P<{name}>")
            self.groups.append(_Group())
            self.i = end + 1
            return
        for prefix in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
            if text.startswith(prefix, i):
                self.out.append(prefix)
                self.groups.append(_Group())
                self.i += len(prefix)
                return
        match = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([):])").match(text, i)
        if match is None:
            raise JavaRegexError(f"the group construct {text[i:i + 4]!r} at character {i} is not one Java has")
        on, off, closer = match.group(1), match.group(2) or "", match.group(3)
        flags = self._flags(on, "") + ("-" + self._flags(off, "-") if off else "")
        self.i = match.end()
        if closer == ":":
            self.out.append(f"(?{flags}:" if flags else "(?:")
            self.groups.append(_Group())
        elif flags:
            # Java: from here to the end of the enclosing group; Python: a scoped group, closed at
            # the group's end and reopened after each `|` of it
            self.out.append(f"(?{flags}:")
            self.groups[-1].flag_groups.append(flags)

    def _flags(self, letters: str, sign: str) -> str:
        out = []
        for letter in letters:
            if letter in _UNSUPPORTED_FLAGS:
                raise JavaRegexError(f"the flag (?{sign}{letter}) ({_UNSUPPORTED_FLAGS[letter]}) has no Python "
                                     "equivalent")
            if letter not in _FLAGS:
                raise JavaRegexError(f"(?{sign}{letter}) is not a Java flag")
            if _FLAGS[letter] not in out:
                out.append(_FLAGS[letter])
        return "".join(out)

    def _class(self) -> str:
        """The contents of the class opening at self.i (without the brackets), as Python writes them."""
        text = self.text
        start = self.i
        self.i += 1
        negated = text.startswith("^", self.i)
        if negated:
            self.i += 1
        items: list[str] = ["^"] if negated else []
        first = True
        while True:
            if self.i >= len(text):
                raise JavaRegexError(f"the character class opened at character {start} is not closed")
            char = text[self.i]
            if char == "]" and not first:
                self.i += 1
                return "".join(items)
            first = False
            if char == "\\":
                items.append(self._escape(in_class=True))
            elif char == "[":
                nested_at = self.i
                inner = self._class()
                if inner.startswith("^"):
                    raise JavaRegexError(f"the negated class nested at character {nested_at} (a Java set "
                                         "operation) has no Python equivalent")
                items.append(inner)
            elif text.startswith("&&", self.i):
                raise JavaRegexError(f"the class intersection && at character {self.i} has no Python equivalent")
            elif char in "&~|":
                items.append("\\" + char)  # plain in both; escaped so Python sees no set operation
                self.i += 1
            else:
                items.append(char)
                self.i += 1

    def _escape(self, in_class: bool) -> str:
        text, i = self.text, self.i
        if i + 1 >= len(text):
            raise JavaRegexError("the pattern ends with a lone \\")
        char = text[i + 1]
        self.i = i + 2
        if char == "Q":
            end = text.find("\\E", self.i)
            quoted = text[self.i:] if end < 0 else text[self.i:end]
            self.i = len(text) if end < 0 else end + 2
            return "".join(_literal(c, in_class) for c in quoted)
        if char == "E":
            raise JavaRegexError(f"\\E at character {i} ends no \\Q quote (Java refuses it)")
        if char in "pP":
            return self._property(char == "P", in_class, i)
        if char == "b" and text.startswith("{", self.i):
            raise JavaRegexError(f"\\b{{g}} (a grapheme boundary) at character {i} has no Python equivalent")
        if char in _SAME:
            if in_class and char in "bBA":
                raise JavaRegexError(f"\\{char} at character {i} is not allowed in a character class")
            return "\\" + char
        if char in "hHvV":
            members = _HORIZONTAL if char in "hH" else _VERTICAL
            if char.isupper():
                if in_class:
                    raise JavaRegexError(f"\\{char} inside a character class at character {i} has no Python "
                                         "equivalent")
                return f"[^{members}]"
            return members if in_class else f"[{members}]"
        if char == "R" and not in_class:
            return _LINE_END
        if char == "z" and not in_class:
            return "\\Z"
        if char == "Z" and not in_class:
            return f"(?={_LINE_END}?\\Z)"
        if char == "k" and not in_class:
            match = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)>").match(text, self.i)
            if match is None:
                raise JavaRegexError(f"\\k at character {i} needs a group name in <>")
            self.i = match.end()
            return f"(?P={match.group(1)})"
        if char == "x" and text.startswith("{", self.i):
            end = text.find("}", self.i)
            digits = text[self.i + 1:end] if end > 0 else ""
            if not re.fullmatch(r"[0-9a-fA-F]{1,6}", digits) or int(digits, 16) > 0x10FFFF:
                raise JavaRegexError(f"\\x{{...}} at character {i} needs a hexadecimal code point")
            self.i = end + 1
            return _literal(chr(int(digits, 16)), in_class)
        if char == "x":
            digits = text[self.i:self.i + 2]
            if not re.fullmatch(r"[0-9a-fA-F]{2}", digits):
                raise JavaRegexError(f"\\x at character {i} needs two hexadecimal digits")
            self.i += 2
            return _literal(chr(int(digits, 16)), in_class)
        if char == "u":
            code = self._hex4(i)
            if 0xD800 <= code < 0xDC00 and text.startswith("\\u", self.i):
                low_at = self.i
                self.i += 2
                low = self._hex4(low_at)
                if 0xDC00 <= low < 0xE000:
                    return _literal(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), in_class)
                self.i = low_at
            return _literal(chr(code), in_class)
        if char == "0":
            match = re.compile(r"[0-3][0-7]{2}|[0-7]{1,2}").match(text, self.i)
            if match is None:
                raise JavaRegexError(f"\\0 at character {i} needs octal digits")
            self.i = match.end()
            return _literal(chr(int(match.group(), 8)), in_class)
        if char == "c":
            if self.i >= len(text):
                raise JavaRegexError(f"\\c at character {i} needs a character")
            self.i += 1
            return _literal(chr(ord(text[self.i - 1]) ^ 64), in_class)
        if char == "e":
            return _literal("\x1b", in_class)
        if char == "N" and text.startswith("{", self.i):
            end = text.find("}", self.i)
            name = text[self.i + 1:end] if end > 0 else ""
            try:
                named = unicodedata.lookup(name)
            except KeyError:
                raise JavaRegexError(f"\\N{{{name}}} at character {i} names no Unicode character") from None
            self.i = end + 1
            return _literal(named, in_class)
        if char.isdigit() and not in_class:
            return "\\" + char  # a back reference
        if char in "GX":
            what = "the end of the previous match" if char == "G" else "a grapheme cluster"
            raise JavaRegexError(f"\\{char} ({what}) at character {i} has no Python equivalent")
        if char.isalnum():
            raise JavaRegexError(f"\\{char} at character {i} is not a Java escape")
        return "\\" + char  # an escaped punctuation character: itself

    def _hex4(self, at: int) -> int:
        digits = self.text[self.i:self.i + 4]
        if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
            raise JavaRegexError(f"\\u at character {at} needs four hexadecimal digits")
        self.i += 4
        return int(digits, 16)

    def _property(self, negated: bool, in_class: bool, at: int) -> str:
        text = self.text
        if text.startswith("{", self.i):
            end = text.find("}", self.i)
            if end < 0:
                raise JavaRegexError(f"the property at character {at} is not closed with }}")
            name = text[self.i + 1:end]
            self.i = end + 1
        else:
            name = text[self.i:self.i + 1]
            self.i += 1
        letter = "P" if negated else "p"
        members = _POSIX.get(name)
        if members is None:
            raise JavaRegexError(f"\\{letter}{{{name}}} at character {at} is a Unicode or java.lang.Character "
                                 f"class with no Python equivalent; the POSIX classes translate: "
                                 f"{', '.join(_POSIX)}")
        if not negated:
            return members if in_class else f"[{members}]"
        if in_class:
            raise JavaRegexError(f"\\P{{{name}}} inside a character class at character {at} has no Python "
                                 "equivalent; use [^...]")
        return f"[^{members}]"


def _literal(char: str, in_class: bool) -> str:
    """One character matched as itself, escaped for where it stands."""
    if in_class:
        return "\\" + char if char in "\\]^-[&~|" else re.escape(char) if not char.isalnum() else char
    return re.escape(char)
