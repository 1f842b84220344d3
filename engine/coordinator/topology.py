"""Refuse flow graphs that would copy records in circles (beyond MM2, which trusts aliases).

MM2's own rule (a topic never goes to a cluster in its name's source chain) stops cycles only
while remote names carry the path. Two cases defeat it, and MM2 loops forever in both
(MM2-REFERENCE §10, item 10):
- IdentityReplicationPolicy keeps names, so a cycle of flows that contains an identity flow
  copies the same topic round and round;
- two aliases for one physical cluster make `A.orders` look foreign to the alias `A2`.
"""

from __future__ import annotations

from collections import defaultdict

from engine.config import FlowConfig
from engine.policy import IDENTITY_POLICY_CLASS


class TopologyError(ValueError):
    """The configured flows would replicate in a loop; the message names the clusters."""


def check_same_cluster_aliases(cluster_ids: dict[str, str]) -> None:
    by_id: dict[str, list[str]] = defaultdict(list)
    for alias, cluster_id in sorted(cluster_ids.items()):
        by_id[cluster_id].append(alias)
    for cluster_id, aliases in by_id.items():
        if len(aliases) > 1:
            raise TopologyError(
                f"clusters {' and '.join(aliases)} are the same Kafka cluster (cluster id {cluster_id}); "
                "replicating between aliases of one cluster would loop — give each cluster one alias"
            )


def check_identity_cycles(flows: list[FlowConfig]) -> None:
    """Any directed cycle of enabled flows that includes an identity-policy flow is refused,
    unless every flow of the cycle writes provenance headers: then a record is never copied back
    to a cluster it came from (engine._fastpath stops it record by record)."""
    edges: dict[str, list[FlowConfig]] = defaultdict(list)
    for flow in flows:
        edges[flow.source].append(flow)
    for start in [f for f in flows if f.policy_class == IDENTITY_POLICY_CLASS]:
        # a path from the identity flow's target back to its source closes a cycle through it
        path = _find_path(edges, start.target, start.source)
        if path is not None and not all(f.provenance_header_enabled for f in [start, *path]):
            cycle = " -> ".join([start.source, start.target] + [f.target for f in path])
            raise TopologyError(
                f"flows {cycle} form a cycle and {start.name} uses IdentityReplicationPolicy, which keeps "
                "topic names, so records would be copied round the cycle forever; use "
                "DefaultReplicationPolicy on one of these flows, disable one, or set "
                "mirror.engine.provenance.header.enabled = true on every flow of the cycle"
            )


def _find_path(edges: dict[str, list[FlowConfig]], origin: str, goal: str) -> list[FlowConfig] | None:
    stack: list[tuple[str, list[FlowConfig]]] = [(origin, [])]
    seen = {origin}
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        for flow in edges.get(node, []):
            if flow.target not in seen:
                seen.add(flow.target)
                stack.append((flow.target, path + [flow]))
    return None
