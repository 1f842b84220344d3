"""Every worked mm2.properties of docs/use-cases.md loads, with the flows it says it has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config.loading import from_properties
from engine.config.properties import parse_properties

USE_CASES = Path(__file__).resolve().parents[2] / "docs" / "use-cases.md"
EXPECTED_FLOWS = {
    "Disaster recovery": ["primary->dr"],
    "Cloud migration": ["onprem->cloud"],
    "Geo-replication": ["us->eu", "eu->us"],
    "Isolation with other retention": ["live->archive"],
    "Aggregation, fan-in": ["edge1->central", "edge2->central", "edge3->central"],
    "Fan-out": ["hq->apac", "hq->emea"],
}


def examples() -> dict[str, str]:
    section = USE_CASES.read_text()
    found = {}
    for title, block in re.findall(r"\*\*([^*]+)\*\* —.*?```properties\n(.*?)```", section, re.S):
        found[title] = block
    return found


def test_the_use_cases_page_has_every_use_case():
    assert sorted(examples()) == sorted(EXPECTED_FLOWS)


@pytest.mark.parametrize("title", sorted(EXPECTED_FLOWS))
def test_each_example_loads_with_its_flows(title, monkeypatch):
    monkeypatch.setenv("CLOUD_KAFKA_PASSWORD", "example-only")
    config = from_properties(parse_properties(examples()[title]), quiet=True)
    assert sorted(f.name for f in config.flows) == sorted(EXPECTED_FLOWS[title])
    assert not [r for r in config.remarks if "not used by mirror-engine" in r], config.remarks
