"""Checkpoints: consumer-group positions on the source, translated exactly, in MM2's bytes.

Every `emit.checkpoints.interval.seconds` the groups selected by `groups` / `groups.exclude` are
listed on the source, their committed offsets on replicated topics translated through the offset
map, and a Checkpoint(group, remote topic, partition, upstream, downstream, metadata) written to
partition 0 of `<source>.checkpoints.internal` on the target — where MM2's MirrorClient and
RemoteClusterUtils.translateOffsets read them. As MM2 does, a checkpoint is written only when it
is new, its upstream offset went down (the group was rewound) or its downstream offset went up.
A position the copy has not reached yet gets no checkpoint until it has: never a guess.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
import time
from collections.abc import Callable

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from engine.clients import DeliveryTally, client_config, track
from engine.config.model import ClusterConfig
from engine.observability.windowed_stats import CheckpointLatencies
from engine.offsets import wire
from engine.offsets.follow import TopicFollower
from engine.offsets.translation import OffsetMap

log = logging.getLogger(__name__)


class OffsetMapReader:
    """Follows a flow's offset map on the target; read_to_end() before every translation."""

    def __init__(self, target: ClusterConfig, source_alias: str, client_id: str):
        self.offset_map = OffsetMap()
        self.follower = TopicFollower(target, wire.offset_map_topic(source_alias), client_id, self._add)

    def _add(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            # a tombstone: the run fell below the source log start
            run = wire.OffsetRun.decode(key, value if value is not None else b"\0" * 26)
        except ValueError as damaged:
            # without the run its positions get no checkpoint (never a wrong one)
            log.error("damaged record in %s, ignored: %s", self.follower.topic, damaged)
            return
        if value is None:
            partition_map = self.offset_map.partitions.get((run.topic, run.partition))
            if partition_map is not None:
                partition_map.runs.pop(run.first_upstream, None)
            return
        self.offset_map.add(run)

    def read_to_end(self) -> OffsetMap:
        self.follower.read_to_end()
        return self.offset_map

    def translate(self, topic: str, partition: int, position: int) -> int | None:
        return self.offset_map.translate(topic, partition, position)

    def close(self) -> None:
        self.follower.close()

    def prune(self, log_starts: dict[tuple[str, int], int]) -> list[bytes]:
        """Forgets runs that end before the source log start; returns their keys to tombstone."""
        keys = []
        for (topic, partition), start in log_starts.items():
            partition_map = self.offset_map.partitions.get((topic, partition))
            if partition_map is None:
                continue
            for first in partition_map.drop_below(start):
                keys.append(wire.OffsetRun(topic, partition, first, 0, 0, 0).key())
        return keys


def read_offset_map(target: ClusterConfig, source_alias: str, client_id: str) -> OffsetMap:
    """A flow's whole offset map as the target holds it now, read once."""
    reader = OffsetMapReader(target, source_alias, client_id)
    try:
        return reader.read_to_end()
    finally:
        reader.close()


class OffsetSyncReader:
    """MM2's translation (offset.translation = mm2): the last offset sync at or before the group's
    position, that sync's downstream offset when it is the position itself, else one past it."""

    def __init__(self, cluster: ClusterConfig, topic: str, client_id: str):
        self.syncs: dict[tuple[str, int], list[tuple[int, int]]] = {}
        self.follower = TopicFollower(cluster, topic, client_id, self._add)

    def _add(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        sync = wire.OffsetSync.decode(key, value)
        history = self.syncs.setdefault((sync.topic, sync.partition), [])
        if history and sync.upstream_offset < history[-1][0]:
            history.clear()  # an upstream rewind (a recreated topic): older syncs no longer apply
        history.append((sync.upstream_offset, sync.downstream_offset))

    def read_to_end(self) -> OffsetSyncReader:
        self.follower.read_to_end()
        return self

    def translate(self, topic: str, partition: int, position: int) -> int | None:
        history = self.syncs.get((topic, partition), [])
        index = bisect.bisect_right(history, (position, float("inf"))) - 1
        if index < 0:
            return None  # older than every sync: MM2 emits no checkpoint
        upstream, downstream = history[index]
        return downstream if upstream == position else downstream + 1

    def close(self) -> None:
        self.follower.close()


class CheckpointEmitter:
    def __init__(self, flow_name: str, source: ClusterConfig, target: ClusterConfig, source_admin: AdminClient,
                 checkpoints_topic: str, groups: re.Pattern[str] | None, groups_exclude: re.Pattern[str] | None,
                 replicated: Callable[[], dict[str, str]], translator: OffsetMapReader | OffsetSyncReader,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 active: Callable[[], bool] = lambda: True):
        self.flow_name = flow_name
        self.active = active  # scale-out: only the instance leading the group checkpoints
        self.source = source
        self.target = target
        self.source_admin = source_admin
        self.checkpoints_topic = checkpoints_topic
        self.groups = groups
        self.groups_exclude = groups_exclude
        self.replicated = replicated  # source topic -> remote topic, of the flow's current partitions
        self.clock_ms = clock_ms
        self.emitted: dict[tuple[str, str, int], wire.Checkpoint] = {}
        self.written = 0
        self.denied_groups: set[str] = set()  # target groups sync.group.offsets may not touch (logged once)
        # a refused write (no WRITE on the topic, say) is logged, never taken for written silently
        self.refused = DeliveryTally(f"checkpoint or offset-map write on cluster {target.alias}")
        self.latency = CheckpointLatencies()  # MM2's checkpoint-latency-ms
        role = f"{flow_name}|MirrorCheckpointConnector"
        self.translator = translator
        self.target_admin = track(target.alias, AdminClient(client_config(target, f"{role}|checkpoint-target-admin")))
        self.producer = track(target.alias, Producer(client_config(target, f"{role}|checkpoints-target-producer", **{
            "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "on_delivery": self.refused})))

    def _selected(self, group: str) -> bool:
        if self.groups is None or not self.groups.fullmatch(group):
            return False
        return self.groups_exclude is None or not self.groups_exclude.fullmatch(group)

    async def emit_once(self) -> int:
        await asyncio.to_thread(self.translator.read_to_end)
        listing = await asyncio.wrap_future(self.source_admin.list_consumer_groups(request_timeout=30))
        groups = sorted(g.group_id for g in listing.valid if self._selected(g.group_id))
        replicated = self.replicated()
        written = 0
        for group in groups:
            read_at = self.clock_ms()
            futures = self.source_admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                                    request_timeout=30)
            try:
                result = await asyncio.wrap_future(futures[group])
            except KafkaException as error:
                log.warning("%s: cannot read the offsets of group %s on cluster %s: %s", self.flow_name, group,
                            self.source.alias, error.args[0].str())
                continue
            for tp in result.topic_partitions:
                remote = replicated.get(tp.topic)
                if remote is None or tp.offset < 0:
                    continue
                downstream = self.translator.translate(tp.topic, tp.partition, tp.offset)
                if downstream is None:
                    continue
                checkpoint = wire.Checkpoint(group, remote, tp.partition, tp.offset, downstream,
                                             getattr(tp, "metadata", None) or "")
                key = (group, remote, tp.partition)
                previous = self.emitted.get(key)
                if previous is not None and not (checkpoint.upstream_offset < previous.upstream_offset
                                                 or checkpoint.downstream_offset > previous.downstream_offset):
                    continue
                self.producer.produce(self.checkpoints_topic, key=checkpoint.key(), value=checkpoint.value(),
                                      partition=0, timestamp=read_at, on_delivery=self._on_ack(key, read_at))
                self.emitted[key] = checkpoint
                written += 1
        if written:
            remaining = await asyncio.to_thread(self.producer.flush, 30)
            if remaining:
                log.warning("%s: %d checkpoints unacknowledged by cluster %s", self.flow_name, remaining,
                            self.target.alias)
        self.written += written
        return written

    def _on_ack(self, key: tuple[str, str, int], read_at: int):
        """As MM2 in the checkpoint's commitRecord: now - when the group's offsets were read."""

        def delivered(err, _message) -> None:
            if err is None:
                self.latency.record(key, time.monotonic() * 1000, self.clock_ms() - read_at)
            else:
                self.refused(err, _message)

        return delivered

    async def sync_group_offsets(self) -> int:
        """`sync.group.offsets.enabled`: commit the translated offsets to the groups on the target.

        Only for a group with no active members there (MM2 writes anyway and the broker refuses it
        with UnknownMemberId warnings), and never backwards: a consumer that already moved on the
        target keeps its position. Returns how many offsets were written.
        """
        by_group: dict[str, list[wire.Checkpoint]] = {}
        for (group, _topic, _partition), checkpoint in self.emitted.items():
            by_group.setdefault(group, []).append(checkpoint)
        if not by_group:
            return 0
        written = 0
        descriptions = self.target_admin.describe_consumer_groups(sorted(by_group), request_timeout=30)
        for group, checkpoints in sorted(by_group.items()):
            try:
                description = await asyncio.wrap_future(descriptions[group])
            except KafkaException as error:
                if error.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED and group not in self.denied_groups:
                    self.denied_groups.add(group)
                    log.warning("%s: group %s on cluster %s is left alone: not authorised: the engine's principal "
                                "needs an ALLOW READ ACL on the group there for sync.group.offsets (%s)",
                                self.flow_name, group, self.target.alias, error.args[0].str())
                continue  # e.g. not authorised to describe it: leave it alone
            if description.members:
                continue
            committed = await asyncio.wrap_future(self.target_admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=30)[group])
            current = {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions}
            moves = [TopicPartition(c.topic, c.partition, c.downstream_offset) for c in checkpoints
                     if current.get((c.topic, c.partition), -1) < c.downstream_offset]
            if not moves:
                continue
            try:
                result = await asyncio.wrap_future(self.target_admin.alter_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, moves)], request_timeout=30)[group])
                # the request succeeds while partitions may be refused one by one (no READ on the topic)
                refused = [tp for tp in result.topic_partitions if tp.error is not None]
                written += len(moves) - len(refused)
                if refused:
                    log.warning("%s: cannot commit offsets of group %s on cluster %s for %s: %s", self.flow_name,
                                group, self.target.alias, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in refused),
                                refused[0].error.str())
            except KafkaException as error:  # a member joined meanwhile, or no permission
                log.warning("%s: cannot commit offsets of group %s on cluster %s: %s", self.flow_name, group,
                            self.target.alias, error.args[0].str())
        return written

    async def sync_groups_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if not self.active():
                continue
            try:
                written = await self.sync_group_offsets()
                log.info("%s: %d group offsets committed on cluster %s", self.flow_name, written, self.target.alias)
            except Exception as error:  # group sync must not stop replication
                log.error("%s: group offset sync failed, retrying in %.0fs: %s", self.flow_name, interval_s, error)

    async def prune_offset_map(self) -> int:
        """Tombstones offset-map runs below the source log start (retention or deleted records)."""
        if not isinstance(self.translator, OffsetMapReader):
            return 0
        partitions = [TopicPartition(t, p) for t, p in self.translator.offset_map.partitions]
        if not partitions:
            return 0
        futures = self.source_admin.list_offsets({tp: OffsetSpec.earliest() for tp in partitions}, request_timeout=30)
        starts = {}
        for tp, future in futures.items():
            try:
                starts[(tp.topic, tp.partition)] = (await asyncio.wrap_future(future)).offset
            except KafkaException:
                continue  # e.g. the source topic is gone: keep its map for failover
        keys = self.translator.prune(starts)
        for key in keys:
            self.producer.produce(wire.offset_map_topic(self.source.alias), key=key, value=None, partition=0)
        if keys:
            await asyncio.to_thread(self.producer.flush, 30)
        return len(keys)

    async def run_forever(self, interval_s: float) -> None:
        while True:
            if not self.active():
                await asyncio.sleep(interval_s)
                continue
            try:
                await self.prune_offset_map()
                written = await self.emit_once()
                log.info("%s: %d checkpoints written", self.flow_name, written)
            except Exception as error:  # checkpointing must not stop replication
                log.error("%s: checkpoint round failed, retrying in %.0fs: %s", self.flow_name, interval_s, error)
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        self.translator.close()
        self.producer.flush(10)
