"""`mirror-engine failover`: move a consumer group from the source cluster to its replica.

Reads the group's newest checkpoints in `<source>.checkpoints.internal` on the target (exact
translations, see engine.offsets.translation), refuses while the group has active members on
the target (their commits would race ours), prints a before/after table per partition and,
unless --dry-run, commits the translated offsets to the group on the target.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from engine.clients import client_config
from engine.config.model import EngineConfig
from engine.config.values import ConfigError
from engine.offsets import wire
from engine.offsets.follow import TopicFollower


class FailoverError(RuntimeError):
    """Failover refused or impossible; names the group and the cluster."""


@dataclass(frozen=True)
class Move:
    topic: str  # on the target
    partition: int
    source_position: int
    current: int | None  # the group's committed offset on the target now
    new: int
    metadata: str


def read_checkpoints(config: EngineConfig, source: str, target: str,
                     group: str) -> dict[tuple[str, int], wire.Checkpoint]:
    """Newest checkpoint per (remote topic, partition) of the group, read to the topic's end."""
    latest: dict[tuple[str, int], wire.Checkpoint] = {}

    def add(key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            checkpoint = wire.Checkpoint.decode(key, value)
        except wire.WireError:
            return  # as MM2's readers: skip what does not decode
        if checkpoint.group == group:
            latest[(checkpoint.topic, checkpoint.partition)] = checkpoint

    follower = TopicFollower(config.cluster(target), wire.checkpoints_topic(source),
                             f"{source}->{target}|failover|checkpoints-consumer", add)
    try:
        follower.read_to_end()
    finally:
        follower.close()
    return latest


def _flow(config: EngineConfig, source: str, target: str):
    for flow in config.flows:
        if flow.source == source and flow.target == target:
            return flow
    return None


def _no_active_members(admin: AdminClient, group: str, cluster: str) -> None:
    description = admin.describe_consumer_groups([group], request_timeout=30)[group].result()
    if description.members:
        raise FailoverError(f"group {group!r} has {len(description.members)} active members on cluster {cluster}; "
                            "stop its consumers there first (their commits would overwrite the move)")


def _committed(admin: AdminClient, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=30)
    result = futures[group].result()
    return {(tp.topic, tp.partition): (tp.offset, getattr(tp, "metadata", None) or "")
            for tp in result.topic_partitions if tp.offset >= 0}


def plan_failback(config: EngineConfig, group: str, current: str, home: str) -> tuple[list[Move], list[str]]:
    """Moves for a group that failed over from `home` to `current` and now goes back.

    Remote topics of the home->current flow (`A.orders` on B) map back to their home topic through
    that flow's offset map: the group resumes at the source record of the copy it would read next.
    Topics written on `current` after the failover come home through the current->home flow
    (`B.orders` on A) and are translated by its checkpoints. Returns the moves and what could not
    be translated (named, not guessed).
    """
    from engine.offsets.checkpoints import read_offset_map
    from engine.offsets.policy import make_policy

    outbound = _flow(config, home, current)
    if outbound is None:
        raise ConfigError(f"{home}->{current}.enabled", f"failback needs the {home}->{current} flow's settings")
    policy = make_policy(outbound.policy_class, home, outbound.separator, outbound.internal_separator_enabled)
    current_admin = AdminClient(client_config(config.cluster(current), f"failback|{current}|admin"))
    home_admin = AdminClient(client_config(config.cluster(home), f"failback|{home}|admin"))
    _no_active_members(home_admin, group, home)
    on_current = _committed(current_admin, group)
    on_home = _committed(home_admin, group)
    offset_map = read_offset_map(config.cluster(current), home, f"{home}->{current}|failback|offset-map-consumer")
    inbound = _flow(config, current, home)
    back_checkpoints = read_checkpoints(config, current, home, group) if inbound else {}
    inbound_policy = (make_policy(inbound.policy_class, current, inbound.separator, inbound.internal_separator_enabled)
                      if inbound else None)
    moves, unresolved = [], []
    for (topic, partition), (offset, metadata) in sorted(on_current.items()):
        home_topic = policy.upstream_topic(topic)  # not None when the topic has a source
        if policy.topic_source(topic) == home and home_topic is not None and home_topic != topic:
            position = offset_map.translate_back(home_topic, partition, offset)
            if position is None:
                unresolved.append(f"{topic}[{partition}]@{offset}: not in the {home}->{current} offset map")
                continue
            moves.append(Move(home_topic, partition, offset, on_home.get((home_topic, partition), (None,))[0],
                              position, metadata))
        elif inbound_policy is not None:
            remote = inbound_policy.format_remote_topic(current, topic)
            checkpoint = back_checkpoints.get((remote, partition))
            if checkpoint is None:
                unresolved.append(f"{topic}[{partition}]@{offset}: no checkpoint of the {current}->{home} flow")
                continue
            moves.append(Move(remote, partition, checkpoint.upstream_offset,
                              on_home.get((remote, partition), (None,))[0], checkpoint.downstream_offset,
                              checkpoint.metadata))
        else:
            unresolved.append(f"{topic}[{partition}]@{offset}: no {current}->{home} flow brings it home")
    return moves, unresolved


def plan(config: EngineConfig, group: str, source: str, target: str) -> list[Move]:
    for alias in (source, target):
        if alias not in config.clusters:
            raise ConfigError("clusters", f"cluster {alias!r} is not configured (no {alias}.bootstrap.servers)")
    checkpoints = read_checkpoints(config, source, target, group)
    if not checkpoints:
        raise FailoverError(f"no checkpoint for group {group!r} in {wire.checkpoints_topic(source)} on cluster "
                            f"{target}: is the {source}->{target} flow running with emit.checkpoints.enabled, and "
                            f"has the group committed offsets on replicated topics?")
    admin = AdminClient(client_config(config.cluster(target), f"{source}->{target}|failover|admin"))
    _no_active_members(admin, group, target)
    current = _committed(admin, group)
    return [
        Move(topic, partition, cp.upstream_offset, current.get((topic, partition), (None,))[0], cp.downstream_offset,
             cp.metadata)
        for (topic, partition), cp in sorted(checkpoints.items())
    ]


def apply(config: EngineConfig, group: str, target: str, moves: list[Move]) -> None:
    admin = AdminClient(client_config(config.cluster(target), f"failover|{target}|admin"))
    partitions = []
    for m in moves:
        # the source commit's metadata travels with the offset, as MM2's checkpoints carry it
        partitions.append(TopicPartition(m.topic, m.partition, m.new, metadata=m.metadata) if m.metadata
                          else TopicPartition(m.topic, m.partition, m.new))
    request = ConsumerGroupTopicPartitions(group, partitions)
    admin.alter_consumer_group_offsets([request], request_timeout=30)[group].result()


def table(group: str, source: str, target: str, moves: list[Move]) -> str:
    lines = [f"group {group}: {source} -> {target}",
             f"{'topic on ' + target:<40} {'partition':>9} {'position on ' + source:>16} "
             f"{'now on ' + target:>12} {'new on ' + target:>12}"]
    for m in moves:
        now = "-" if m.current is None else str(m.current)
        lines.append(f"{m.topic:<40} {m.partition:>9} {m.source_position:>16} {now:>12} {m.new:>12}")
    if moves and all(m.new == m.source_position for m in moves):
        # a remote topic copied from offset 0 of a gap-free source, with duplicate-free restarts,
        # keeps the source's offsets: the translation is the identity
        lines.append(f"every new offset equals the group's position on {source}: on these partitions the copy "
                     f"keeps the source's offsets, so the group could also move without translation")
    return "\n".join(lines)
