"""A flow's internal topics, as MM2 names and places them: its offset storage (progress) and offset
map on the target, its offset syncs on the cluster `offset-syncs.topic.location` names, and its
checkpoints on the target; created at the flow's start. Also the checkpoint emitter that writes the
checkpoints and syncs group offsets (engine.offsets.checkpoints), with the translator it reads."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from engine.config.model import ClusterConfig, FlowConfig
from engine.coordinator.topics import TopicSpec, ensure_topic, topic_partition_counts
from engine.filters import compile_list
from engine.offsets import wire
from engine.offsets.checkpoints import CheckpointEmitter, OffsetMapReader, OffsetSyncReader
from engine.offsets.policy import DefaultReplicationPolicy

COMPACT = {"cleanup.policy": "compact"}


class InternalTopics:
    def __init__(self, flow: FlowConfig, policy: DefaultReplicationPolicy, source: ClusterConfig,
                 target: ClusterConfig, source_admin: AdminClient, target_admin: AdminClient,
                 setting_key: Callable[[str], str], worker_setting_key: Callable[[str], str]):
        self.flow = flow
        self.policy = policy
        self.source, self.target = source, target
        self.source_admin, self.target_admin = source_admin, target_admin
        self.setting_key = setting_key  # the name under which a flow setting was given
        self.worker_setting_key = worker_setting_key  # the same for a Connect worker setting

    def offset_syncs_cluster(self) -> ClusterConfig:
        return self.source if self.flow.offset_syncs_topic_location == "source" else self.target

    def offset_syncs_topic(self) -> str:
        # named after the cluster it does not live on
        other = self.flow.target if self.flow.offset_syncs_topic_location == "source" else self.flow.source
        return wire.offset_syncs_topic(other, self.policy.internal_separator)

    def checkpoints_topic(self) -> str:
        return wire.checkpoints_topic(self.flow.source, self.policy.internal_separator)

    def writes_checkpoints(self) -> bool:
        # as MM2, whose checkpoint connector refuses to run without offset syncs:
        # emit.offset-syncs.enabled = false writes neither
        return self.flow.emit_checkpoints_enabled and self.flow.emit_offset_syncs_enabled

    async def ensure(self, target_topics: dict[str, int]) -> None:
        """Creates the missing ones; `target_topics`: the target's topics and partition counts."""
        flow, target = self.flow, self.target
        storage_rf_key = self.worker_setting_key("offset.storage.replication.factor")
        await ensure_topic(self.target_admin, target.alias, TopicSpec(
            flow.offsets_topic, flow.offset_storage_partitions, flow.offset_storage_replication_factor,
            COMPACT, storage_rf_key), target_topics)
        await ensure_topic(self.target_admin, target.alias, TopicSpec(
            wire.offset_map_topic(flow.source), 1, flow.offset_storage_replication_factor, COMPACT,
            storage_rf_key), target_topics)
        if flow.emit_offset_syncs_enabled:
            cluster = self.offset_syncs_cluster()
            admin = self.source_admin if cluster is self.source else self.target_admin
            existing = await topic_partition_counts(admin, cluster.alias, cluster.bootstrap_servers)
            await ensure_topic(admin, cluster.alias, TopicSpec(
                self.offset_syncs_topic(), 1, flow.offset_syncs_topic_replication_factor, COMPACT,
                self.setting_key("offset-syncs.topic.replication.factor")), existing)
        if self.writes_checkpoints():
            await ensure_topic(self.target_admin, target.alias, TopicSpec(
                self.checkpoints_topic(), 1, flow.checkpoints_topic_replication_factor, COMPACT,
                self.setting_key("checkpoints.topic.replication.factor")), target_topics)

    def checkpoint_emitter(self, replicated: Callable[[], dict[str, str]],
                           active: Callable[[], bool]) -> CheckpointEmitter:
        """`replicated`: source topic -> remote topic of the partitions copied; `active`: whether this
        instance writes the checkpoints now (scale-out: the group's leader)."""
        flow = self.flow
        return CheckpointEmitter(
            flow.name, self.source, self.target, self.source_admin, self.checkpoints_topic(),
            compile_list(flow.groups, self.setting_key("groups")),
            compile_list(flow.groups_exclude, self.setting_key("groups.exclude")),
            replicated, self._translator(), active=active,
        )

    def _translator(self) -> OffsetMapReader | OffsetSyncReader:
        role = f"{self.flow.name}|MirrorCheckpointConnector"
        if self.flow.offset_translation == "mm2":
            return OffsetSyncReader(self.offset_syncs_cluster(), self.offset_syncs_topic(),
                                    f"{role}|offset-syncs-{self.flow.offset_syncs_topic_location}-consumer")
        return OffsetMapReader(self.target, self.flow.source, f"{role}|offset-map-consumer")
