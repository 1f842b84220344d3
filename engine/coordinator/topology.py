"""Flow graphs that would copy records in circles (beyond MM2, which trusts aliases).

MM2's own rule (a topic never goes to a cluster in its name's source chain) stops cycles only
while remote names carry the path. Two cases defeat it, and MM2 loops forever in both
(docs/design.md, 'Flows, topologies and what keeps them from looping'):
- IdentityReplicationPolicy keeps names, so a topic that every flow of a cycle copies goes round
  and round (`A->B` and `B->A` with the identity policy both copying `orders`);
- two aliases for one physical cluster make `A.orders` look foreign to the alias `A2`.

The second is refused at start. The first is decided per topic, at each topic refresh: a flow
does not copy a topic whose copy the following flows would bring back to the flow's source
(FlowGraph.loop). So two-way replication with disjoint filters (a migration: `^(?!recommendations$).*`
one way, `recommendations` the other) runs as MM2 runs it, and a topic both directions would copy
is copied by neither; the flows name it in the log, /status and mirror_engine_looping_topics.
A cycle whose every flow writes provenance headers needs neither: engine._fastpath stops a
record that comes back, record by record.
"""

from __future__ import annotations

from collections import defaultdict

from engine.config.model import FlowConfig
from engine.coordinator.topics import copies
from engine.filters import TopicFilter
from engine.offsets.policy import IDENTITY_POLICY_CLASS, DefaultReplicationPolicy, make_policy


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


def path_text(flows: list[FlowConfig]) -> str:
    """`A -> B -> A` for the flows A->B, B->A."""
    return " -> ".join([flows[0].source] + [f.target for f in flows])


class FlowGraph:
    """The enabled flows, each with the policy and topic filter it routes a topic name with."""

    def __init__(self, flows: list[FlowConfig]):
        self.flows = flows
        self._routes: dict[str, list[tuple[FlowConfig, DefaultReplicationPolicy, TopicFilter]]] = defaultdict(list)
        for flow in flows:
            policy = make_policy(flow.policy_class, flow.source, flow.separator, flow.internal_separator_enabled)
            self._routes[flow.source].append((flow, policy, flow.topic_filter()))

    def _route(self, flow: FlowConfig) -> tuple[FlowConfig, DefaultReplicationPolicy, TopicFilter]:
        return next(route for route in self._routes[flow.source] if route[0].name == flow.name)

    def loop(self, flow: FlowConfig, topic: str) -> list[FlowConfig] | None:
        """The flows, starting with this one, that would copy `topic` (a topic on the flow's source)
        from one cluster to the next and back to the flow's source; None when no such path exists,
        or when every flow on it writes provenance headers (its records never come back)."""
        _, policy, topic_filter = self._route(flow)
        if not copies(flow, policy, topic_filter, topic):
            return None
        origin = flow.source
        stack = [(flow.target, policy.format_remote_topic(flow.source, topic), [flow])]
        seen = {stack[0][:2]}
        while stack:
            cluster, name, path = stack.pop()
            for step, step_policy, step_filter in self._routes[cluster]:
                if not copies(step, step_policy, step_filter, name):
                    continue
                remote, route = step_policy.format_remote_topic(step.source, name), [*path, step]
                if step.target == origin:
                    if not all(f.provenance_header_enabled for f in route):
                        return route
                elif (step.target, remote) not in seen and len(route) < len(self.flows):
                    seen.add((step.target, remote))
                    stack.append((step.target, remote, route))
        return None


def identity_cycles(flows: list[FlowConfig]) -> list[list[FlowConfig]]:
    """The cycles of flows through an identity-policy flow, one per set of flows, each starting with
    that flow; those whose every flow writes provenance headers are left out."""
    edges: dict[str, list[FlowConfig]] = defaultdict(list)
    for flow in flows:
        edges[flow.source].append(flow)
    cycles: list[list[FlowConfig]] = []
    seen: set[frozenset[str]] = set()
    for start in [f for f in flows if f.policy_class == IDENTITY_POLICY_CLASS]:
        path = _find_path(edges, start.target, start.source)
        if path is None:
            continue
        cycle = [start, *path]
        names = frozenset(f.name for f in cycle)
        if names not in seen and not all(f.provenance_header_enabled for f in cycle):
            seen.add(names)
            cycles.append(cycle)
    return cycles


def cycle_remarks(flows: list[FlowConfig]) -> list[str]:
    """What `run` logs at start and `check-config` prints about identity-policy cycles: one line per
    cycle, then one per topic named literally in a flow's `topics` that would go round it."""
    from engine.security.acls import LITERAL, WILDCARD, regex_patterns

    remarks = []
    for cycle in identity_cycles(flows):
        identity = next(f for f in cycle if f.policy_class == IDENTITY_POLICY_CLASS)
        remarks.append(
            f"flows {path_text(cycle)} form a cycle and {identity.name} uses IdentityReplicationPolicy, which keeps "
            "topic names: a topic the flows would copy all the way round is copied by none of them (named in the "
            "log, /status and mirror_engine_looping_topics at each topic refresh); the other topics are copied")
    if not remarks:
        return remarks
    graph = FlowGraph(flows)
    for flow in flows:
        for name, kind in regex_patterns(flow.topics):
            path = graph.loop(flow, name) if kind == LITERAL and name != WILDCARD else None
            if path is not None:
                remarks.append(f"topic {name} would be copied round {path_text(path)}: {flow.name} does not copy it")
    return remarks


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
