"""The provenance header codec: its Python side (engine.offsets.wire) and the C loop's side
(engine/fastpath/provenance.pyx) against the same vectors, tests/data/provenance_vectors.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import _fastpath
from engine.offsets import wire

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "provenance_vectors.json").read_text())


def _headers(rows):
    return [(name, None if value is None else bytes.fromhex(value)) for name, value in rows]


@pytest.mark.parametrize("vector", VECTORS["values"], ids=lambda v: f"{v['cluster']}/{v['topic']}/{v['offset']}")
def test_a_record_s_value_is_the_same_from_both_sides(vector):
    value = bytes.fromhex(vector["value"])
    provenance = wire.Provenance(vector["cluster"], vector["topic"], vector["partition"], vector["offset"])
    prefix = wire.provenance_prefix(vector["cluster"], vector["topic"], vector["partition"])
    assert provenance.encode() == value
    assert wire.provenance_value(prefix, vector["offset"]) == value
    assert _fastpath.native_provenance_value(prefix, vector["offset"]) == value
    assert wire.Provenance.decode(value) == provenance


@pytest.mark.parametrize("vector", VECTORS["came_from"], ids=lambda v: v["why"])
def test_the_cycle_rule_is_the_same_from_both_sides(vector):
    headers, cluster = _headers(vector["headers"]), vector["cluster"].encode()
    assert wire.came_from(headers, cluster) is vector["expected"]
    assert _fastpath.native_came_from(headers, cluster) is vector["expected"]


@pytest.mark.parametrize("vector", VECTORS["without_provenance"], ids=lambda v: v["why"])
def test_the_copy_s_own_header_is_recognised_for_the_audit_and_the_resume(vector):
    result = wire.without_provenance(_headers(vector["headers"]), wire.Provenance(*vector["expected"]))
    assert result == (None if vector["result"] is None else _headers(vector["result"]))
