"""Flow graphs that would loop are refused with the clusters named."""

import pytest

from engine.config import FlowConfig
from engine.coordinator.topology import TopologyError, check_identity_cycles, check_same_cluster_aliases
from engine.policy import IDENTITY_POLICY_CLASS


def flow(source, target, identity=False, provenance=False):
    if identity:
        return FlowConfig(source=source, target=target, policy_class=IDENTITY_POLICY_CLASS,
                          provenance_header_enabled=provenance)
    return FlowConfig(source=source, target=target, provenance_header_enabled=provenance)


def test_default_policy_cycles_are_allowed():
    check_identity_cycles([flow("A", "B"), flow("B", "A")])
    check_identity_cycles([flow("A", "B"), flow("B", "C"), flow("C", "A")])


def test_identity_without_cycle_is_allowed():
    check_identity_cycles([flow("A", "B", identity=True), flow("C", "B", identity=True)])


def test_identity_active_active_is_refused():
    with pytest.raises(TopologyError, match=r"flows A -> B -> A form a cycle and A->B uses IdentityReplicationPolicy"):
        check_identity_cycles([flow("A", "B", identity=True), flow("B", "A")])


def test_longer_identity_cycle_is_refused():
    with pytest.raises(TopologyError, match=r"B -> C -> A -> B"):
        check_identity_cycles([flow("A", "B"), flow("B", "C", identity=True), flow("C", "A")])


def test_identity_cycle_is_allowed_when_every_flow_of_it_writes_provenance_headers():
    check_identity_cycles([flow("A", "B", identity=True, provenance=True), flow("B", "A", identity=True, provenance=True)])
    with pytest.raises(TopologyError, match="mirror.engine.provenance.header.enabled = true on every flow"):
        check_identity_cycles([flow("A", "B", identity=True, provenance=True), flow("B", "C", provenance=True),
                               flow("C", "A")])


def test_two_aliases_of_one_cluster_are_refused():
    check_same_cluster_aliases({"A": "id-1", "B": "id-2"})
    with pytest.raises(TopologyError, match="clusters A and A2 are the same Kafka cluster \\(cluster id id-1\\)"):
        check_same_cluster_aliases({"A": "id-1", "A2": "id-1", "B": "id-2"})
