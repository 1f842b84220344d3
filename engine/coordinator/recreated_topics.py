"""A source topic deleted and created again (its topic id changed) is copied again from its first
offset, after the old copies on its remote topic.

Its stored progress and offset map describe the old topic, so they are reset: the offset map's
runs of the topic are tombstoned first, then its progress is stored as "before the first offset"
(so the map never covers what progress says is not copied), and per partition an offset sync
rewinds: upstream 0 is downstream where the old copies end, as MM2 writes one when upstream offsets
go back. While workers still hold the old partitions, they drain first: the reset waits for the
next topic refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from confluent_kafka import KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from engine.clients import client_config
from engine.config.model import ClusterConfig
from engine.coordinator.topics import topic_partition_counts
from engine.offsets import wire
from engine.offsets.checkpoints import OffsetMapReader
from engine.offsets.policy import DefaultReplicationPolicy
from engine.offsets.translation import READ_THROUGH, OffsetMap

log = logging.getLogger(__name__)


class TopicRestart:
    """Writes what makes one recreated topic start over from its first offset."""

    def __init__(self, source_alias: str, policy: DefaultReplicationPolicy, source_admin: AdminClient,
                 target_admin: AdminClient, source_servers: str,
                 read_offset_map: Callable[[], OffsetMap],
                 write_reset: Callable[[list[bytes], list[tuple[str, int, int]]], None],
                 write_syncs: Callable[[list[wire.OffsetSync]], None] | None):
        self.source_alias = source_alias
        self.policy = policy
        self.source_admin = source_admin
        self.target_admin = target_admin
        self.source_servers = source_servers
        self.read_offset_map = read_offset_map  # blocking: run on a thread
        self.write_reset = write_reset  # tombstones, then progress; blocking
        self.write_syncs = write_syncs  # None: the flow writes no offset syncs

    async def __call__(self, topic: str) -> None:
        remote = self.policy.format_remote_topic(self.source_alias, topic)
        counts = await topic_partition_counts(self.source_admin, self.source_alias, self.source_servers)
        partitions = list(range(counts.get(topic, 0)))
        offset_map = await asyncio.to_thread(self.read_offset_map)
        tombstones = [wire.OffsetRun(topic, p, first, 0, 0, 0).key() for p in partitions
                      for first in list(getattr(offset_map.partitions.get((topic, p)), "runs", {})) + [READ_THROUGH]]
        ends = await self._end_offsets(remote, partitions)
        await asyncio.to_thread(self.write_reset, tombstones, [(topic, p, -1) for p in partitions])
        if self.write_syncs is not None:
            syncs = [wire.OffsetSync(topic, p, 0, ends.get(p, 0)) for p in partitions]
            await asyncio.to_thread(self.write_syncs, syncs)

    async def _end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        futures = self.target_admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                                                 request_timeout=30)
        ends = {}
        for tp, future in futures.items():
            try:
                ends[tp.partition] = (await asyncio.wrap_future(future)).offset
            except KafkaException:
                continue
        return ends


class RecreatedTopics:
    """Notices source topics whose topic id changed and restarts them once their old partitions drained."""

    def __init__(self, flow_name: str, source_admin: AdminClient, restart: Callable[[str], Awaitable[None]],
                 remote_name: Callable[[str], str]):
        self.flow_name = flow_name
        self.source_admin = source_admin
        self.restart = restart
        self.remote_name = remote_name
        self.topic_ids: dict[str, str] = {}  # a changed id: the topic was deleted and created again
        self.pending: set[str] = set()  # recreated topics whose old partitions are draining

    async def notice(self, topics: Iterable[str], running: set[str]) -> list[str]:
        """The recreated topics among `topics`. The ones not `running` restart now; the others wait
        in `pending` for their workers to drain (their partitions must be stopped meanwhile)."""
        names = sorted(set(topics))
        ids = {}
        if names:
            futures = self.source_admin.describe_topics(TopicCollection(names), request_timeout=30)
            for topic, future in futures.items():
                try:
                    ids[topic] = str((await asyncio.wrap_future(future)).topic_id)
                except KafkaException:
                    continue  # gone again meanwhile: the next refresh sees it
        recreated = sorted(t for t, topic_id in ids.items() if self.topic_ids.get(t, topic_id) != topic_id)
        self.topic_ids.update(ids)
        for topic in recreated:
            log.warning("%s: source topic %s was deleted and created again (new topic id); it is copied again "
                        "from its first offset, after the old copies on %s", self.flow_name, topic,
                        self.remote_name(topic))
            if topic in running:
                self.pending.add(topic)
            else:
                await self.restart(topic)
        return recreated

    async def restart_drained(self) -> None:
        """The topics noticed while running restart now: their workers drained them since."""
        for topic in sorted(self.pending):
            await self.restart(topic)
        self.pending.clear()


def kafka_topic_restart(flow_name: str, clusters: Callable[[], tuple[ClusterConfig, ClusterConfig]],
                        offsets_topic: str, policy: DefaultReplicationPolicy, source_admin: AdminClient,
                        target_admin: AdminClient,
                        offset_syncs: Callable[[], tuple[ClusterConfig, str]] | None) -> TopicRestart:
    """A TopicRestart whose writes go to the flow's internal topics through clients of their own;
    `clusters()`: the flow's source and target with their current connection settings;
    `offset_syncs()`: the offset-syncs topic's cluster and name (None: the flow writes none)."""

    def read_offset_map() -> OffsetMap:
        source, target = clusters()
        reader = OffsetMapReader(target, source.alias, f"{flow_name}|reset|offset-map-consumer")
        try:
            return reader.read_to_end()
        finally:
            reader.close()

    def write_reset(tombstones: list[bytes], progress: list[tuple[str, int, int]]) -> None:
        from engine.worker.progress import ProgressStore

        source, target = clusters()
        store = ProgressStore(source.alias, target.alias, offsets_topic,
                              consumer_config=client_config(target, f"{flow_name}|reset|progress-consumer"),
                              producer_config=client_config(target, f"{flow_name}|reset|progress-producer"))
        map_topic = wire.offset_map_topic(source.alias)
        producer = Producer(client_config(target, "mirror-engine|reset|offset-map-producer", **{"acks": "all"}))
        for key in tombstones:
            producer.produce(map_topic, key=key, value=None, partition=0)
        if producer.flush(30):
            raise RuntimeError(f"tombstones for {map_topic} on cluster {target.alias} not acknowledged")
        store.store(progress)

    def write_syncs(syncs: list[wire.OffsetSync]) -> None:
        assert offset_syncs is not None
        cluster, topic = offset_syncs()
        producer = Producer(client_config(cluster, "mirror-engine|reset|offset-syncs-producer", **{"acks": "all"}))
        for sync in syncs:
            producer.produce(topic, key=sync.key(), value=sync.value(), partition=0)
        producer.flush(30)

    source = clusters()[0]
    return TopicRestart(source.alias, policy, source_admin, target_admin, source.bootstrap_servers,
                        read_offset_map, write_reset, write_syncs if offset_syncs is not None else None)
