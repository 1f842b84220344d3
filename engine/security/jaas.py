"""`sasl.jaas.config` as Kafka reads it: `<LoginModule class> <flag> [option=value ...];`.

Values are words or double-quoted strings with backslash escapes. Only the login modules whose
work librdkafka does itself are accepted (PLAIN, SCRAM, OAUTHBEARER); any other module is a Java
class the engine cannot run (a cloud vendor's IAM login, say) and is refused by name.
"""

from __future__ import annotations

import re

import msgspec

PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KERBEROS_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
SUPPORTED_MODULES = (PLAIN_MODULE, SCRAM_MODULE, OAUTHBEARER_MODULE)
CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")

_TOKEN = re.compile(r'\s*(?:(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<symbol>[=;])|(?P<word>[^\s=;"]+))', re.S)
_QUOTED_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "b": "\b"}


class JaasLogin(msgspec.Struct, frozen=True):
    module: str
    options: dict[str, str]


def parse_jaas(key: str, text: str) -> JaasLogin:
    """The one login module of a `sasl.jaas.config`; errors name the key, never the option values."""
    from engine.config import ConfigError

    tokens = _tokens(key, text)
    logins = []
    i = 0
    while i < len(tokens):
        kind, module = tokens[i]
        if kind != "word":
            raise ConfigError(key, "expected a login module class name at the start of an entry")
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "word" or tokens[i + 1][1].lower() not in CONTROL_FLAGS:
            raise ConfigError(key, f"login module {module} needs a control flag ({', '.join(CONTROL_FLAGS)})")
        i += 2
        options: dict[str, str] = {}
        while i < len(tokens) and tokens[i] != ("symbol", ";"):
            if not (i + 2 < len(tokens) and tokens[i][0] == "word" and tokens[i + 1] == ("symbol", "=")
                    and tokens[i + 2][0] in ("word", "quoted")):
                raise ConfigError(key, f"login module {module}: expected option=value pairs ending with ';'")
            options[tokens[i][1]] = tokens[i + 2][1]
            i += 3
        if i >= len(tokens):
            raise ConfigError(key, f"login module {module}: the entry must end with ';'")
        i += 1
        logins.append(JaasLogin(module, options))
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


def _tokens(key: str, text: str) -> list[tuple[str, str]]:
    from engine.config import ConfigError

    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ConfigError(key, f"cannot parse the JAAS entry at character {position} (an unclosed quote?)")
        position = match.end()
        if match.group("quoted") is not None:
            tokens.append(("quoted", _unquote(match.group("quoted")[1:-1])))
        elif match.group("symbol") is not None:
            tokens.append(("symbol", match.group("symbol")))
        else:
            tokens.append(("word", match.group("word")))
    return tokens


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _QUOTED_ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)
