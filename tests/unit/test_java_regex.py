"""Java regular expressions as MM2's filters compile them, translated to Python. Every table row was
produced by java.util.regex.Pattern (Java 17) on this machine: the names it matches, or that it
refuses the pattern; the engine must match the same names or refuse with the construct named."""

from __future__ import annotations

import pytest

from engine.config.loading import from_properties
from engine.config.values import ConfigError
from engine.java_regex import JavaRegexError, compile_java

NAMES = ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'a b', 'a\tb', 'x!y', 'é', 'É', 'a_1', '', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-', '\x1b', 'foo\n']

# (pattern, the names Java's Pattern.matcher(name).matches() accepts)
ACCEPTED = [
    ('sensors-\\p{Alpha}+|\\Qlegacy.erp.v1\\E|(?<line>line-[0-9]+)-events', ['sensors-Temp', 'legacy.erp.v1', 'line-7-events']),
    ('\\p{Upper}+', ['ORDERS', 'B']),
    ('\\P{Lower}+', ['ORDERS', 'é', 'É', 'B', '-', '\x1b']),
    ('[\\p{Alpha}_\\p{Digit}]+', ['orders', 'Orders', 'ORDERS', 'legacyXerpXv1', 'a_1', 'ab', 'aB', 'b', 'B']),
    ('\\p{Punct}', ['-']),
    ('[\\p{Punct}]', ['-']),
    ('\\p{Alnum}*', ['orders', 'Orders', 'ORDERS', 'legacyXerpXv1', '', 'ab', 'aB', 'b', 'B']),
    ('\\p{Space}', []),
    ('\\p{Blank}', []),
    ('\\p{XDigit}+', ['ab', 'aB', 'b', 'B']),
    ('\\p{Graph}+', ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'x!y', 'a_1', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-']),
    ('\\p{Print}+', ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'a b', 'x!y', 'a_1', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-']),
    ('\\p{Cntrl}', ['\x1b']),
    ('\\p{ASCII}+', ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'a b', 'a\tb', 'x!y', 'a_1', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-', '\x1b', 'foo\n']),
    ('\\Qa|b\\E', ['a|b']),
    ('\\Qx!y', ['x!y']),
    ('[\\Q|&~\\E]b|a[\\Q|&~\\E]b', ['a|b', 'a~b']),
    ('(?<first>a)\\k<first>', []),
    ('(?<n1>o)rders', ['orders']),
    ('(?i)orders', ['orders', 'Orders', 'ORDERS']),
    ('ab|(?i)orders|x!y', ['orders', 'Orders', 'ORDERS', 'x!y', 'ab']),
    ('a(?i)b|b', ['ab', 'aB', 'b', 'B']),
    ('(?i:orders)|b', ['orders', 'Orders', 'ORDERS', 'b']),
    ('(?i)o(?-i)rders', ['orders', 'Orders']),
    ('((?i)o)rders', ['orders', 'Orders']),
    ('(?i)é', ['é']),
    ('(?s)foo.', ['foo\n']),
    ('(?i-s)orders', ['orders', 'Orders', 'ORDERS']),
    ('(?i)\\p{Lower}', ['b', 'B']),
    ('(?i)[a-z]', ['b', 'B']),
    ('\\w+', ['orders', 'Orders', 'ORDERS', 'legacyXerpXv1', 'a_1', 'ab', 'aB', 'b', 'B']),
    ('\\w', ['b', 'B']),
    ('\\d+', []),
    ('a\\sb', ['a b', 'a\tb']),
    ('\\h', []),
    ('\\H+', ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'x!y', 'é', 'É', 'a_1', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-', '\x1b', 'foo\n']),
    ('foo\\R', ['foo\n']),
    ('\\x1b|\\e', ['\x1b']),
    ('\\cA|\\x{78}!y', ['x!y']),
    ('\\u006frders', ['orders']),
    ('\\0157rders', ['orders']),
    ('\\N{LATIN SMALL LETTER E WITH ACUTE}', ['é']),
    ('[a-c[x-z]]|[\\w]', ['b', 'B']),
    ('[^a-c[x-z]]', ['é', 'É', 'B', '-', '\x1b']),
    ('a{2}|ab{1,}|x{1,2}!y', ['x!y', 'ab']),
    ('ab*+', ['ab']),
    ('(?>a|ab)', []),
    ('a++b', ['ab']),
    ('(a)\\1', []),
    ('^(?!recommendations$).*', ['orders', 'Orders', 'ORDERS', 'sensors-Temp', 'sensors-42', 'legacy.erp.v1', 'legacyXerpXv1', 'line-7-events', 'line-x-events', 'a b', 'a\tb', 'x!y', 'é', 'É', 'a_1', '', 'ab', 'aB', 'a|b', 'a~b', 'b', 'B', '-', '\x1b']),
    ('[]a]|[^]a]', ['é', 'É', 'b', 'B', '-', '\x1b']),
    ('[a-]|[-a]', ['-']),
    ('\\P{Alpha}', ['é', 'É', '-', '\x1b']),
    ('[\\h]', []),
    ('\\uD83D\\uDE00|b', ['b']),
    ('(?<=a)b|(?<!a)B', ['B']),
    ('(?=o)orders', ['orders']),
    ('a\\z|foo\\Z', []),
]

# valid Java the engine refuses: (pattern, the message)
REFUSED = [
    ('\\pL', '\\p{L} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('\\p{L}+', '\\p{L} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('\\p{IsAlphabetic}+', '\\p{IsAlphabetic} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('\\p{javaLowerCase}+', '\\p{javaLowerCase} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('\\p{Lu}', '\\p{Lu} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('\\p{InGreek}', '\\p{InGreek} at character 0 is a Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space'),
    ('(?x) o r d e r s', 'the flag (?x) (COMMENTS) has no Python equivalent'),
    ('(?u)(?i)é', 'the flag (?u) (UNICODE_CASE) has no Python equivalent'),
    ('(?d)foo.', 'the flag (?d) (UNIX_LINES) has no Python equivalent'),
    ('(?U)\\w', 'the flag (?U) (UNICODE_CHARACTER_CLASS) has no Python equivalent'),
    ('[a-z&&[^aeiou]]', 'the class intersection && at character 4 has no Python equivalent'),
    ('[a-c[^x]]', 'the negated class nested at character 4 (a Java set operation) has no Python equivalent'),
    ('\\G', '\\G (the end of the previous match) at character 0 has no Python equivalent'),
    ('\\X', '\\X (a grapheme cluster) at character 0 has no Python equivalent'),
    ('\\b{g}', '\\b{g} (a grapheme boundary) at character 0 has no Python equivalent'),
    ('[\\P{Alpha}]', '\\P{Alpha} inside a character class at character 1 has no Python equivalent; use [^...]'),
    ('[\\H]', '\\H inside a character class at character 1 has no Python equivalent'),
]

# refused by Java too: (pattern, Java's description, the engine's message)
JAVA_REFUSES = [
    ('a{', 'Illegal repetition', 'the { at character 1 starts no {n}, {n,} or {n,m} repetition (Java refuses it; write \\{ for the character)'),
    ('x{,2}', 'Illegal repetition', 'the { at character 1 starts no {n}, {n,} or {n,m} repetition (Java refuses it; write \\{ for the character)'),
    ('\\y', 'Illegal/unsupported escape sequence', '\\y at character 0 is not a Java escape'),
    ('\\E|x', 'Illegal/unsupported escape sequence', '\\E at character 0 ends no \\Q quote (Java refuses it)'),
    ('(?<na-me>a)', "named capturing group is missing trailing '>'", 'the named group at character 0 needs a name of letters and digits starting with a letter, then >'),
    ('[x', 'Unclosed character class', 'the character class opened at character 0 is not closed'),
    ('a)', "Unmatched closing ')'", 'not a valid regular expression: unbalanced parenthesis at position 1'),
    ('(a', 'Unclosed group', 'not a valid regular expression: missing ), unterminated subpattern at position 0'),
    ('*a', "Dangling meta character '*'", 'not a valid regular expression: nothing to repeat at position 0'),
]


@pytest.mark.parametrize("pattern, matched", ACCEPTED, ids=[p for p, _ in ACCEPTED])
def test_the_translation_matches_the_names_java_matches(pattern, matched):
    compiled = compile_java(pattern)
    assert [name for name in NAMES if compiled.fullmatch(name)] == matched


@pytest.mark.parametrize("pattern, message", REFUSED, ids=[p for p, _ in REFUSED])
def test_constructs_without_a_python_equivalent_are_refused_by_name(pattern, message):
    with pytest.raises(JavaRegexError) as caught:
        compile_java(pattern)
    assert str(caught.value) == message


@pytest.mark.parametrize("pattern, java_says, message", JAVA_REFUSES, ids=[p for p, _, _ in JAVA_REFUSES])
def test_what_java_refuses_is_refused(pattern, java_says, message):
    with pytest.raises(JavaRegexError) as caught:
        compile_java(pattern)
    assert str(caught.value) == message


BASE = {"clusters": "A, B", "A.bootstrap.servers": "a:1", "B.bootstrap.servers": "b:1", "A->B.enabled": "true"}


def test_a_list_is_one_java_regex_so_an_inline_flag_holds_for_the_entries_after_it():
    flow = from_properties({**BASE, "A->B.topics": r"audit, (?i)orders, payments, \Qlegacy.erp\E"}).flows[0]
    selected = flow.topic_filter().matches
    assert [t for t in ("audit", "AUDIT", "ORDERS", "Payments", "legacy.erp", "legacyXerp") if selected(t)] == [
        "audit", "ORDERS", "Payments", "legacy.erp"]


@pytest.mark.parametrize("key, value, message", [
    ("A->B.topics", r"orders, \p{L}+", r"A->B.topics: invalid Java regular expression: \p{L} at character 7 is a "
     "Unicode or java.lang.Character class with no Python equivalent; the POSIX classes translate: Lower, Upper, "
     r"ASCII, Alpha, Digit, Alnum, Punct, Graph, Print, Blank, Cntrl, XDigit, Space (the list joined with |, as MM2 "
     r"compiles it: 'orders|\\p{L}+')"),
    ("groups.exclude", "[a-z&&[^q]]-.*", "groups.exclude: invalid Java regular expression: the class intersection && "
     "at character 4 has no Python equivalent ('[a-z&&[^q]]-.*')"),
    ("A->B.config.properties.exclude", "(?x) retention .*", "A->B.config.properties.exclude: invalid Java regular "
     "expression: the flag (?x) (COMMENTS) has no Python equivalent ('(?x) retention .*')"),
])
def test_a_refusal_names_the_key_and_the_construct(key, value, message):
    with pytest.raises(ConfigError) as caught:
        from_properties({**BASE, key: value})
    assert caught.value.key == key and str(caught.value) == message
