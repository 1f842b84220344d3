"""Topic filter lists: comma-split, joined into one full-match regex, exclusion wins."""

from engine.config.values import split_list
from engine.filters import TopicFilter, compile_list


def test_split_list():
    assert split_list(" a , b,c ") == ["a", "b", "c"]
    assert split_list("") == []
    assert split_list("   ") == []


def test_full_match_and_exclusion_wins():
    f = TopicFilter(include=compile_list("orders.*, payments", "topics"),
                    exclude=compile_list(r"orders\.secret", "topics.exclude"))
    assert f.matches("orders")
    assert f.matches("orders.eu")
    assert f.matches("payments")
    assert not f.matches("payments2")  # whole-name match, not a prefix
    assert not f.matches("xorders")
    assert not f.matches("orders.secret")


def test_empty_include_matches_nothing_and_empty_exclude_nothing():
    assert not TopicFilter(include=compile_list("", "topics"), exclude=None).matches("orders")
    assert TopicFilter(include=compile_list(".*", "topics"), exclude=compile_list("", "x")).matches("orders")
