"""`sasl.jaas.config` as Kafka reads it: `<LoginModule class> <flag> [option=value ...];`.

Kafka's `JaasConfig` reads the value with a `java.io.StreamTokenizer` set up so that:

- characters 0-32 (space, tabs, line ends) separate tokens;
- `;` and `=` are tokens of their own;
- `"` and `'` open a quoted string that ends at the same quote, at a line end or at the end of the
  text (an unclosed quote is not an error by itself); inside it `\\` escapes one character
  (`\\n`, `\\t`, `\\r`, `\\f`, `\\b`, `\\a`, `\\v`, up to three octal digits, anything else stands for
  itself), and `;`, `=`, `/`, spaces and the other quote are plain text;
- `/` starts a comment: `/* ... */`, or else to the end of the line, so an unquoted `/` cuts a value;
- every other character from 33 up is part of a word (129-159 excepted: each is a token of its own).

An entry is a module name, a control flag (required, requisite, sufficient, optional; any case),
option=value pairs (names and values words or quoted strings; a repeated name keeps the last value)
and `;`. Kafka's clients take exactly one entry. Only the login modules whose work librdkafka does
itself are accepted (PLAIN, SCRAM, OAUTHBEARER); any other module is a Java class the engine cannot
run (a cloud vendor's IAM login, say) and is refused by name. Errors never show option values.
"""

from __future__ import annotations

import msgspec

from engine.config.values import ConfigError

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KERBEROS_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
SUPPORTED_MODULES = (PLAIN_MODULE, SCRAM_MODULE, OAUTHBEARER_MODULE)
CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")

_QUOTES = "\"'"
_SYMBOLS = ";="
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_OCTAL = "01234567"
# the options of the supported modules, the only names an error may show (any other word may be a secret)
_OPTION_NAMES = frozenset({"username", "password", "tokenauth", "clientId", "clientSecret", "scope",
                           "unsecuredLoginStringClaim_sub", "unsecuredLoginListClaim_scope"})


class JaasLogin(msgspec.Struct, frozen=True):
    module: str
    options: dict[str, str]


class _Token(msgspec.Struct, frozen=True):
    kind: str  # "word", "quoted", "symbol" (`;`, `=`) or "other" (a lone character 129-159)
    text: str
    position: int
    closed: bool = True  # a quoted string that found its closing quote


def _is_space(char: str) -> bool:
    return ord(char) <= 32


def _is_word(char: str) -> bool:
    code = ord(char)
    return code > 32 and not 129 <= code <= 159 and char not in _QUOTES and char not in _SYMBOLS and char != "/"


def parse_jaas(key: str, text: str) -> JaasLogin:
    """The one login module of a `sasl.jaas.config`; errors name the key, never the option values."""
    tokens, cuts = _tokens(text)
    logins = []
    i = 0
    while i < len(tokens):
        login, i = _entry(key, tokens, cuts, i)
        logins.append(login)
    if len(logins) != 1:
        raise ConfigError(key, f"expected exactly one login module, found {len(logins)}")
    login = logins[0]
    if login.module == KERBEROS_MODULE:
        raise ConfigError(key, f"login module {login.module} (GSSAPI) needs a librdkafka built with Cyrus SASL; "
                               "the one the engine runs on has PLAIN, SCRAM and OAUTHBEARER")
    if login.module not in SUPPORTED_MODULES:
        raise ConfigError(key, f"login module {login.module} is a Java class that librdkafka cannot run; "
                               f"supported: {', '.join(SUPPORTED_MODULES)}")
    return login


def _entry(key: str, tokens: list[_Token], cuts: list[int], i: int) -> tuple[JaasLogin, int]:
    """One `<module> <flag> (<name>=<value>)* ;` from tokens[i]; returns it and the next index."""
    def valued(token: _Token) -> bool:  # what Java's tokenizer gives a string value (sval) for
        return token.kind in ("word", "quoted")

    module = tokens[i]
    if not valued(module) or not module.text:
        raise ConfigError(key, f"expected a login module class name at character {module.position}")
    if i + 1 >= len(tokens) or not valued(tokens[i + 1]) or tokens[i + 1].text.lower() not in CONTROL_FLAGS:
        raise ConfigError(key, f"login module {module.text} needs a control flag ({', '.join(CONTROL_FLAGS)})")
    i += 2
    options: dict[str, str] = {}
    while i < len(tokens) and not (tokens[i].kind == "symbol" and tokens[i].text == ";"):
        name = tokens[i]
        if not (valued(name) and i + 2 < len(tokens) and tokens[i + 1].kind == "symbol"
                and tokens[i + 1].text == "=" and valued(tokens[i + 2])):
            # a stray word may be part of a secret (`password=two words;`): only known names are shown
            shown = f"option {name.text}" if name.text in _OPTION_NAMES else f"the text at character {name.position}"
            raise ConfigError(key, f"login module {module.text}: {shown} is not an option=value pair; expected "
                                   f"option=value pairs ending with ';'{_hint(tokens, cuts)}")
        options[name.text] = tokens[i + 2].text
        i += 3
    if i >= len(tokens):
        raise ConfigError(key, f"login module {module.text}: the entry must end with ';'{_hint(tokens, cuts)}")
    return JaasLogin(module.text, options), i + 1


def _hint(tokens: list[_Token], cuts: list[int]) -> str:
    """Why an entry may have lost its end: a quote left open, or a value cut by a `/`."""
    unclosed = [t.position for t in tokens if not t.closed]
    if unclosed:
        return f" (the quote at character {unclosed[0]} is not closed)"
    if cuts:
        return (f" (the / at character {cuts[0]} starts a comment that runs to the end of the line; "
                "quote a value that contains /)")
    return ""


def _tokens(text: str) -> tuple[list[_Token], list[int]]:
    """The tokens of Kafka's JAAS tokenizer (see the module docstring), comments dropped, and the
    positions of the `/` that cut a word or followed an `=` (a value that needed quotes)."""
    tokens: list[_Token] = []
    cuts: list[int] = []
    position, end = 0, len(text)
    while position < end:
        char = text[position]
        start = position
        if _is_space(char):
            position += 1
        elif _is_word(char):
            while position < end and _is_word(text[position]):
                position += 1
            tokens.append(_Token("word", text[start:position], start))
        elif char in _QUOTES:
            value, position, closed = _quoted(text, position)
            tokens.append(_Token("quoted", value, start, closed))
        elif char == "/":
            if position and (_is_word(text[position - 1]) or text[position - 1] == "="):
                cuts.append(position)
            if text.startswith("/*", position):
                close = text.find("*/", position + 2)
                position = end if close < 0 else close + 2
            else:
                # `//` or a lone `/`: the character after the `/` is skipped, then the rest of the line
                position += 2
                while position < end and text[position] not in "\r\n":
                    position += 1
        else:
            tokens.append(_Token("symbol" if char in _SYMBOLS else "other", char, start))
            position += 1
    return tokens, cuts


def _quoted(text: str, position: int) -> tuple[str, int, bool]:
    """The string opened by the quote at text[position]: (value, position after it, closed)."""
    quote, end = text[position], len(text)
    position += 1
    out: list[str] = []
    while position < end and text[position] not in (quote, "\n", "\r"):
        char = text[position]
        position += 1
        if char != "\\":
            out.append(char)
        elif position >= end:
            break  # a backslash ending the text: nothing follows, so the entry cannot end with ';'
        elif text[position] in _OCTAL:
            # up to three octal digits, the third only after a first digit of 0-3 (so at most \377)
            digits = 3 if text[position] <= "3" else 2
            stop = position
            while stop < end and stop - position < digits and text[stop] in _OCTAL:
                stop += 1
            out.append(chr(int(text[position:stop], 8)))
            position = stop
        else:
            out.append(_ESCAPES.get(text[position], text[position]))
            position += 1
    if position < end and text[position] == quote:
        return "".join(out), position + 1, True
    return "".join(out), position, False
